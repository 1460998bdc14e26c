package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rhizome-kv/rhizome/site"
)

// runConflicts lists the conflicts a site has recorded: for each key, the
// incarnation kept whole and the one dropped, the kind, the sites, when, and
// what was at stake (an allocation repair's detail).
func runConflicts(args []string) int {
	f, code, ok := parseEndpointCommand("conflicts", "List the conflicts a site has recorded (concurrent creates and merge fallbacks).",
		"rhizome conflicts --endpoints 127.0.0.1:2379 -o json", args)
	if !ok {
		return code
	}
	var cs []site.Conflict
	if err := f.get("/rhizome/conflicts", &cs); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome conflicts: %v\n", err)
		return 1
	}
	if f.output == "json" {
		if cs == nil {
			cs = []site.Conflict{}
		}
		printJSON(cs)
		return 0
	}
	printConflicts(os.Stdout, cs)
	return 0
}

func printConflicts(out io.Writer, cs []site.Conflict) {
	if len(cs) == 0 {
		fmt.Fprintln(out, "no conflicts recorded")
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KEY\tKIND\tWINNER\tLOSER\tSITES\tWHEN\tDETAIL")
	for _, c := range cs {
		when := "unknown"
		if !c.Time.IsZero() {
			when = c.Time.Format(time.RFC3339)
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", c.Key, c.Kind, c.Winner, c.Loser, strings.Join(c.Sites, ","), when, c.Detail)
	}
	w.Flush()
}
