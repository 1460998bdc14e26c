package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rhizome-kv/rhizome/site"
)

// runStatus prints a site's view of the cluster: every other site, whether it is
// alive and reachable, how many changes it still lacks, and when it was last heard.
func runStatus(args []string) int {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	url := fs.String("metrics-url", "http://127.0.0.1:2381", "a site's --listen-metrics-urls address")
	asJSON := fs.Bool("json", false, "print the raw JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	client := http.Client{Timeout: 5 * time.Second}
	resp, err := client.Get(strings.TrimSuffix(*url, "/") + "/status")
	if err != nil {
		fmt.Fprintf(os.Stderr, "rhizome status: %v\n", err)
		return 1
	}
	defer resp.Body.Close()
	var st site.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome status: %s: %v\n", *url, err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.Encode(st)
		return 0
	}
	fmt.Printf("site %s at revision %d; change log holds %d changes\n", st.Site, st.Revision, st.LogLen)
	w := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SITE\tALIVE\tREACHABLE\tLACKS\tLAST CONTACT")
	for _, p := range st.Peers {
		last := "never"
		if !p.LastContact.IsZero() {
			last = time.Since(p.LastContact).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(w, "%s\t%t\t%t\t%d\t%s\n", p.Site, p.Alive, p.Reachable, p.Lacks, last)
	}
	w.Flush()
	return 0
}
