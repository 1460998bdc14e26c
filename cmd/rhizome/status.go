package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rhizome-kv/rhizome/site"
)

// endpointFlags are the flags that say how to reach a site, as etcdctl's.
type endpointFlags struct {
	endpoints          string
	cacert, cert, key  string
	insecureSkipVerify bool
	timeout            time.Duration
	output             string
}

func (f *endpointFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.endpoints, "endpoints", "127.0.0.1:2379", "comma-separated client URLs (or HOST:PORT) of a site, as etcdctl's; the first that answers is used")
	fs.StringVar(&f.endpoints, "metrics-url", f.endpoints, "same as --endpoints: a site's --listen-metrics-urls serve the same endpoints")
	fs.StringVar(&f.cacert, "cacert", "", "CA bundle to verify the site's TLS certificate")
	fs.StringVar(&f.cert, "cert", "", "client certificate, for a site that requires one")
	fs.StringVar(&f.key, "key", "", "client certificate's key")
	fs.BoolVar(&f.insecureSkipVerify, "insecure-skip-tls-verify", false, "accept any server certificate (testing only)")
	fs.DurationVar(&f.timeout, "command-timeout", 5*time.Second, "how long to wait for the site")
	fs.StringVar(&f.output, "o", "table", "output format: table or json")
	fs.StringVar(&f.output, "output", "table", "output format: table or json")
}

// validate checks the flags before anything is asked of a site.
func (f *endpointFlags) validate() error {
	switch {
	case f.output != "table" && f.output != "json":
		return fmt.Errorf("-o %q: want table or json", f.output)
	case (f.cert == "") != (f.key == ""):
		return errors.New("--cert and --key go together")
	case strings.TrimSpace(f.endpoints) == "":
		return errors.New("--endpoints is empty")
	}
	return nil
}

// get fetches path from the first endpoint that answers and decodes its JSON into v.
func (f *endpointFlags) get(path string, v any) error {
	client, err := f.client()
	if err != nil {
		return err
	}
	var errs []string
	for _, ep := range splitList(f.endpoints) {
		url := f.url(ep) + path
		err := fetchJSON(client, url, v)
		if err == nil {
			return nil
		}
		errs = append(errs, err.Error())
	}
	return errors.New(strings.Join(errs, "; "))
}

// url makes an endpoint a URL: without a scheme, https when TLS flags are given.
func (f *endpointFlags) url(ep string) string {
	if strings.Contains(ep, "://") {
		return strings.TrimSuffix(ep, "/")
	}
	if f.cacert != "" || f.cert != "" || f.insecureSkipVerify {
		return "https://" + ep
	}
	return "http://" + ep
}

// client speaks HTTP/1.1, which a site's client port serves beside gRPC.
func (f *endpointFlags) client() (*http.Client, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: f.insecureSkipVerify, NextProtos: []string{"http/1.1"}}
	if f.cacert != "" {
		pem, err := os.ReadFile(f.cacert)
		if err != nil {
			return nil, fmt.Errorf("--cacert: %w", err)
		}
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--cacert %s: no certificates", f.cacert)
		}
	}
	if f.cert != "" {
		cert, err := tls.LoadX509KeyPair(f.cert, f.key)
		if err != nil {
			return nil, fmt.Errorf("--cert/--key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Timeout: f.timeout, Transport: &http.Transport{TLSClientConfig: cfg, Proxy: http.ProxyFromEnvironment}}, nil
}

// fetchJSON gets a URL and decodes its JSON, with errors that say whether the URL
// does not answer or answers but is not a Rhizome site.
func fetchJSON(client *http.Client, url string, v any) error {
	resp, err := client.Get(url)
	if err != nil {
		var netErr net.Error
		if errors.As(err, &netErr) || errors.Is(err, io.EOF) || strings.Contains(err.Error(), "connection refused") {
			return fmt.Errorf("%s does not answer: %w", url, err)
		}
		return fmt.Errorf("%s is not a Rhizome site, or not at that scheme (http/https): %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		return fmt.Errorf("%s is not a Rhizome site: it answers %s", url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("%s is not a Rhizome site: %w", url, err)
	}
	return nil
}

// parseEndpointCommand parses a command's flags; ok false with the exit code.
// summary and example are the command table's (rhizome --help).
func parseEndpointCommand(name, summary, example string, args []string) (*endpointFlags, int, bool) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var f endpointFlags
	f.register(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return nil, code, false
	}
	if err := f.validate(); err != nil {
		usageError(name, "%v", err)
		return nil, 2, false
	}
	return &f, 0, true
}

func printJSON(v any) {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// runStatus prints a site's view of the cluster: this site's revision, keys, size
// and compaction, and every site it counts or has heard of with its state, whether
// it is reachable, the changes each side lacks, the lag, last contact and conflicts.
func runStatus(args []string) int {
	f, code, ok := parseEndpointCommand("status", "Show a site and its view of every other site of the cluster.",
		"rhizome status --endpoints https://10.0.0.1:2379 --cacert ca.crt --cert client.crt --key client.key", args)
	if !ok {
		return code
	}
	var st site.Status
	if err := f.get("/rhizome/status", &st); err != nil {
		fmt.Fprintf(os.Stderr, "rhizome status: %v\n", err)
		return 1
	}
	if f.output == "json" {
		printJSON(st)
		return 0
	}
	printStatus(os.Stdout, st, time.Now())
	return 0
}

func printStatus(out io.Writer, st site.Status, now time.Time) {
	ready := "ready"
	if !st.Ready {
		ready = "NOT READY"
	}
	compacted := "never compacted"
	if st.CompactRevision >= 0 {
		compacted = fmt.Sprintf("compacted at %d", st.CompactRevision)
	}
	fmt.Fprintf(out, "site %s (%s): revision %d, %d keys, %s, %s, change log %d, %d conflicts, %s\n",
		st.Site, st.Version, st.Revision, st.Keys, bytesString(st.SizeBytes), compacted, st.ChangeLog, st.Conflicts, ready)
	if len(st.Sites) == 0 {
		fmt.Fprintln(out, "no other site known")
		return
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SITE\tSTATE\tREACHABLE\tTHEY LACK\tWE LACK\tLAG\tLAST CONTACT\tCONFLICTS")
	for _, p := range st.Sites {
		theyLack, weLack, lag := "?", "?", "?"
		if p.Reported {
			theyLack, weLack = fmt.Sprint(p.TheyLack), fmt.Sprint(p.WeLack)
			lag = (time.Duration(p.LagSeconds * float64(time.Second))).Round(100 * time.Millisecond).String()
		}
		last := "never"
		if !p.LastContact.IsZero() {
			last = now.Sub(p.LastContact).Round(time.Second).String() + " ago"
		}
		fmt.Fprintf(w, "%s\t%s\t%t\t%s\t%s\t%s\t%s\t%d\n", p.Site, p.State, p.Reachable, theyLack, weLack, lag, last, p.Conflicts)
	}
	w.Flush()
}

func bytesString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
