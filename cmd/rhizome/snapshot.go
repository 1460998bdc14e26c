package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/rhizome-kv/rhizome/site"
	"github.com/rhizome-kv/rhizome/store"
)

const snapshotUsage = `usage: rhizome snapshot restore FILE --data-dir DIR [--name NAME] [--reuse-name]
       rhizome snapshot status FILE

Save a snapshot of a running site with etcdctl, as for etcd:
  etcdctl --endpoints 127.0.0.1:2379 snapshot save backup.db
then bring a site back from it:
  rhizome snapshot restore backup.db --data-dir edge1.rhizome
  rhizome serve --name <the name it prints> --data-dir edge1.rhizome

restore creates a NEW site (default name: the snapshot's site name plus
"-restored-" and the time) holding the snapshot's keys, values, revisions and
leases. The other sites treat it as a new member and bring it up to date.
`

// runSnapshot restores a site from a snapshot taken with `etcdctl snapshot save`
// (Maintenance Snapshot), or prints what a snapshot file holds.
func runSnapshot(args []string) int {
	if len(args) == 0 {
		usageError("snapshot", "want restore or status")
		return 2
	}
	if args[0] == "-h" || args[0] == "--help" {
		fmt.Print(snapshotUsage)
		return 0
	}
	switch args[0] {
	case "restore":
		return runSnapshotRestore(args[1:])
	case "status":
		return runSnapshotStatus(args[1:])
	}
	usageError("snapshot", "unknown command %q: want restore or status", args[0])
	return 2
}

func runSnapshotRestore(args []string) int {
	fs := flag.NewFlagSet("snapshot restore", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), snapshotUsage+"\nflags:\n"); fs.PrintDefaults() }
	dataDir := fs.String("data-dir", "", "directory of the restored site; must not exist or be empty (required)")
	name := fs.String("name", "", "name of the restored site (default: the snapshot's site name + \"-restored-\" + the time)")
	reuse := fs.Bool("reuse-name", false, "allow --name to be the snapshot's own site name. UNSAFE unless no other site "+
		"holds changes that site made after the snapshot: the restored site would number its new changes as those "+
		"were numbered, and the sites would diverge. Use it only when the whole cluster is restored from snapshots "+
		"taken at once, or the site never synced")
	file, code := parseWithFile(fs, args)
	if file == "" {
		return code
	}
	if *dataDir == "" {
		fmt.Fprintln(os.Stderr, "rhizome snapshot restore: --data-dir is required")
		return 2
	}
	info, err := readSnapshotInfo(file)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rhizome snapshot restore: %v\n", err)
		return 1
	}
	if *name == "" {
		*name = info.Site + "-restored-" + time.Now().UTC().Format("20060102150405")
	}
	if *name == info.Site && !*reuse {
		fmt.Fprintf(os.Stderr, "rhizome snapshot restore: --name %s is the snapshot's own site name; "+
			"restore as a new site (another --name) or, if no other site holds changes %s made after the snapshot, add --reuse-name\n",
			*name, info.Site)
		return 2
	}
	f, err := os.Open(file)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rhizome snapshot restore: %v\n", err)
		return 1
	}
	defer f.Close()
	if err := os.MkdirAll(*dataDir, 0o700); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome snapshot restore: %v\n", err)
		return 1
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if _, err := store.Restore(f, store.RestoreConfig{Dir: site.StoreDir(*dataDir), Site: *name, Logger: log}); err != nil {
		os.Remove(*dataDir) // only if the restore left it empty
		fmt.Fprintf(os.Stderr, "rhizome snapshot restore: %v\n", err)
		return 1
	}
	fmt.Printf("restored the snapshot of site %s at revision %d (compacted at %d) into %s as site %s\n",
		info.Site, info.Revision, info.CompactRevision, *dataDir, *name)
	fmt.Printf("start it with: rhizome serve --name %s --data-dir %s\n", *name, *dataDir)
	return 0
}

func runSnapshotStatus(args []string) int {
	fs := flag.NewFlagSet("snapshot status", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), snapshotUsage) }
	file, code := parseWithFile(fs, args)
	if file == "" {
		return code
	}
	info, err := readSnapshotInfo(file)
	if err != nil {
		fmt.Fprintf(os.Stderr, "rhizome snapshot status: %v\n", err)
		return 1
	}
	fmt.Printf("site %s, revision %d, compacted at %d, taken %s\n",
		info.Site, info.Revision, info.CompactRevision, info.Taken.Format(time.RFC3339))
	return 0
}

// parseWithFile parses flags given before or after the one FILE argument. It
// returns the file, or "" and the exit code: 0 after printing the help (fs.Usage,
// to stdout), 2 after a one-line usage error.
func parseWithFile(fs *flag.FlagSet, args []string) (string, int) {
	help := fs.Usage
	fs.Usage = func() {}
	fs.SetOutput(io.Discard)
	var files []string
	for {
		err := fs.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(os.Stdout)
			help()
			return "", 0
		}
		if err != nil {
			usageError(fs.Name(), "%s", flagError(err))
			return "", 2
		}
		if fs.NArg() == 0 {
			break
		}
		files, args = append(files, fs.Arg(0)), fs.Args()[1:]
	}
	if len(files) != 1 {
		usageError(fs.Name(), "want one snapshot FILE, got %q", files)
		return "", 2
	}
	return files[0], 0
}

func readSnapshotInfo(file string) (store.BackupInfo, error) {
	f, err := os.Open(file)
	if err != nil {
		return store.BackupInfo{}, err
	}
	defer f.Close()
	info, err := store.ReadBackupInfo(f)
	if err != nil {
		return info, fmt.Errorf("%s: %w", file, err)
	}
	return info, nil
}
