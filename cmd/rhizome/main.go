// Command rhizome is the one Rhizome binary: an etcd-compatible site (serve), the
// Kubernetes model checker (check) and the tools around them.
package main

import (
	"fmt"
	"os"
	"sort"
)

// commands maps each subcommand to its entry point; each lives in its own file.
var commands = map[string]func(args []string) int{
	"serve":    runServe,
	"check":    runCheck,
	"status":   runStatus,
	"bench":    runBench,
	"snapshot": runSnapshot,
}

func main() {
	if len(os.Args) < 2 || os.Args[1] == "-h" || os.Args[1] == "--help" || os.Args[1] == "help" {
		usage()
		os.Exit(2)
	}
	run, ok := commands[os.Args[1]]
	if !ok {
		fmt.Fprintf(os.Stderr, "rhizome: unknown command %q\n", os.Args[1])
		usage()
		os.Exit(2)
	}
	os.Exit(run(os.Args[2:]))
}

func usage() {
	names := make([]string, 0, len(commands))
	for name := range commands {
		names = append(names, name)
	}
	sort.Strings(names)
	fmt.Fprintf(os.Stderr, "usage: rhizome <command> [flags]\ncommands: %v\nrun 'rhizome <command> -h' for a command's flags\n", names)
}
