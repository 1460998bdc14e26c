package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"sort"
	"strings"
)

// command is one subcommand of the binary.
type command struct {
	run     func(args []string) int
	summary string // one line, shown by `rhizome help` and above the command's flags
	example string // one command line, shown with the command's flags
}

// commands maps each subcommand's name to its entry point (each in its own file)
// and its help. `help` and `version` are answered by dispatch itself.
func commands() map[string]command {
	return map[string]command{
		"serve": {runServe,
			"run one site: the etcd v3 API for its clients, sync and gossip with the other sites",
			"rhizome serve --name site-a --data-dir /var/lib/rhizome --listen-client-urls http://127.0.0.1:2379"},
		"status": {runStatus,
			"print a site's view of the cluster: every site, its state, what it lacks, last contact",
			"rhizome status --endpoints 127.0.0.1:2379 -o table"},
		"check": {runCheck,
			"explore Kubernetes controllers under a consistency model and print every violated property",
			"rhizome check --scenario stale-reads --consistency rhizome --depth 100"},
		"bench": {runBench,
			"benchmark Rhizome against a real etcd measured in the same run (suites: kv, kube, sites, fill), or run the edge story (suite: edge)",
			"rhizome bench kv --duration 10s --out bench/results"},
		"conflicts": {runConflicts,
			"list recorded conflicts: key, kind, winner, loser, when, sites",
			"rhizome conflicts --endpoints 127.0.0.1:2379 -o json"},
		"snapshot": {runSnapshot,
			"restore a site from an `etcdctl snapshot save` file, as a new site by default",
			"rhizome snapshot restore backup.db --data-dir /var/lib/rhizome --name site-a2"},
	}
}

// version is the binary's version. Release builds set it with
// -ldflags "-X main.version=v1.2.3"; otherwise it comes from the build info the
// go command records (the module version, or the VCS revision of a checkout).
var version = ""

// versionString is the one line `rhizome version` prints.
func versionString() string {
	v, rev, modified := version, "", false
	if info, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = info.Main.Version
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	extra := []string{runtime.Version(), runtime.GOOS + "/" + runtime.GOARCH}
	if rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		if modified {
			rev += "+modified"
		}
		extra = append([]string{"commit " + rev}, extra...)
	}
	return fmt.Sprintf("rhizome %s (%s)", v, strings.Join(extra, ", "))
}

// dispatch runs the command args name and returns the process's exit status:
// 0 for help and version, 2 for a usage error.
func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		writeUsage(stderr)
		return 2
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		if len(args) > 1 {
			if c, ok := commands()[args[1]]; ok {
				return c.run([]string{"--help"})
			}
		}
		writeUsage(stdout)
		return 0
	case "--version", "-version", "version":
		fmt.Fprintln(stdout, versionString())
		return 0
	}
	c, ok := commands()[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "rhizome: unknown command %q; run 'rhizome --help'\n", args[0])
		return 2
	}
	return c.run(args[1:])
}

func writeUsage(w io.Writer) {
	cmds := commands()
	names := make([]string, 0, len(cmds))
	for name := range cmds {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "rhizome: an etcd-compatible datastore for Kubernetes at the edge\n\n")
	fmt.Fprintf(w, "usage: rhizome <command> [flags]\n\ncommands:\n")
	for _, name := range names {
		fmt.Fprintf(w, "  %-8s %s\n", name, cmds[name].summary)
	}
	fmt.Fprintf(w, "  %-8s %s\n  %-8s %s\n", "version", "print the version (also --version)", "help", "print this help (also --help, -h)")
	fmt.Fprintf(w, "\nrun 'rhizome <command> --help' for a command's flags and an example\n")
}

// parseFlags parses args with fs, which must be ContinueOnError. It prints the
// command's help to stdout for -h/--help, and a bad flag or value as one line
// (never the whole flag list) to stderr. ok is false when the caller should
// exit with code: 0 after help, 2 after a usage error.
func parseFlags(fs *flag.FlagSet, args []string) (code int, ok bool) {
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	err := fs.Parse(args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		writeCommandHelp(os.Stdout, fs)
		return 0, false
	case err != nil:
		usageError(fs.Name(), "%s", flagError(err))
		return 2, false
	case fs.NArg() > 0:
		usageError(fs.Name(), "unexpected arguments %q", fs.Args())
		return 2, false
	}
	return 0, true
}

// flagErrorForms rewrite the flag package's errors to name flags as --name,
// the way the help and the docs spell them.
var flagErrorForms = []struct {
	re   *regexp.Regexp
	repl string
}{
	{regexp.MustCompile(`^invalid (?:boolean )?value (".*") for (?:flag )?-([^:]+): (.*)$`), "--$2 $1: $3"},
	{regexp.MustCompile(`^flag provided but not defined: -+(.*)$`), "unknown flag --$1"},
	{regexp.MustCompile(`^flag needs an argument: -+(.*)$`), "--$1: needs a value"},
}

// flagError is err from flag.FlagSet.Parse as one line in the form above.
func flagError(err error) string {
	msg := err.Error()
	for _, f := range flagErrorForms {
		if f.re.MatchString(msg) {
			return f.re.ReplaceAllString(msg, f.repl)
		}
	}
	return msg
}

// usageError prints one line to stderr: what is wrong and where to read more.
func usageError(name, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "rhizome %s: %s; run 'rhizome %s --help'\n", name, fmt.Sprintf(format, args...), name)
}

// writeCommandHelp prints a command's summary, example and flags.
func writeCommandHelp(w io.Writer, fs *flag.FlagSet) {
	name := fs.Name()
	c := commands()[strings.Fields(name)[0]]
	fmt.Fprintf(w, "rhizome %s: %s\n\nexample:\n  %s\n\nflags:\n", name, c.summary, c.example)
	fs.VisitAll(func(f *flag.Flag) {
		typ, usage := flag.UnquoteUsage(f)
		fmt.Fprintf(w, "  %s\n    \t%s%s\n", strings.TrimSpace("--"+f.Name+" "+typ), usage, defaultNote(f))
	})
	if name == "serve" {
		fmt.Fprintf(w, "\n%s\n", sourcesNote)
	}
}

// defaultNote is " (default: X)" unless the flag's default is its zero value.
func defaultNote(f *flag.Flag) string {
	switch f.DefValue {
	case "", "0", "false", "0s":
		return ""
	}
	return fmt.Sprintf(" (default: %s)", f.DefValue)
}
