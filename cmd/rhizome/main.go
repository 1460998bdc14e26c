// Command rhizome is the one Rhizome binary: an etcd-compatible site (serve), the
// Kubernetes model checker (check) and the tools around them. Exit status: 0 on
// success (and for --help and --version), 1 when a command fails, 2 for a usage
// error. The commands are listed in cli.go.
package main

import "os"

func main() {
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}
