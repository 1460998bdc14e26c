package kube_test

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rhizome-kv/rhizome/internal/kube"
)

// testHealth runs last: after everything the other scenarios did, the
// apiserver found the datastore to be a modern etcd, served consistent
// reads from its watch cache, decoded everything it read, and logged no
// storage errors.
func testHealth(t *testing.T, c *kube.Cluster) {
	ctx := t.Context()

	// Consistent reads (a list without resourceVersion) are served from
	// the watch cache only if the datastore supports progress requests;
	// otherwise the delegator sends them to the datastore and the counter
	// stays put.
	consistent := map[string]string{"resource": "configmaps", "success": "true", "fallback": "false"}
	before, err := c.APIServerMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const lists = 3
	for range lists {
		if _, err := c.Client.CoreV1().ConfigMaps("kube-system").List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	after, err := c.APIServerMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const readMetric = "apiserver_watch_cache_consistent_read_total"
	if d := after.Sum(readMetric, consistent) - before.Sum(readMetric, consistent); d < lists {
		t.Errorf("%s%v rose by %v over %d consistent lists, want %d: consistent reads are not served from the watch cache",
			readMetric, consistent, d, lists, lists)
	}
	if fb := after.Sum(readMetric, map[string]string{"fallback": "true"}); fb > 0 {
		// The cache did not catch up within its 3s wait: a slow machine,
		// or progress notifications that do not arrive.
		t.Logf("%s: %v consistent reads fell back to the datastore: %v", readMetric, fb, series(after, readMetric))
	}

	// Every object read from storage was decoded.
	if n := after.Sum("apiserver_storage_decode_errors_total", nil); n > 0 {
		t.Errorf("apiserver_storage_decode_errors_total = %v: %v", n, series(after, "apiserver_storage_decode_errors_total"))
	}
	// Requests to the datastore failed only where a scenario asked for
	// it: the lists at a compacted revision.
	for _, s := range after {
		if s.Name != "etcd_request_errors_total" || s.Value == 0 {
			continue
		}
		res, op := s.Labels["resource"], s.Labels["operation"]
		if (res == "configmaps" || res == uncachedResource) && (op == "list" || op == "listWithCount") {
			t.Logf("expected datastore request errors: %v %v", s.Labels, s.Value)
			continue
		}
		t.Errorf("datastore request errors: %v = %v", s.Labels, s.Value)
	}

	log, err := c.ReadLog(kube.ComponentAPIServer)
	if err != nil {
		t.Fatal(err)
	}
	// pkg/storage/feature/feature_support_checker.go logs one of these if
	// the datastore's Status does not show an etcd that supports progress
	// requests; the apiserver then never serves consistent reads from cache.
	for _, msg := range []string{
		"RequestWatchProgress feature is not supported",
		"Failed to check if RequestWatchProgress is supported",
		"Failed to parse etcd version",
	} {
		if strings.Contains(log, msg) {
			t.Errorf("kube-apiserver logged %q:\n%s", msg, grep(log, regexp.MustCompile(regexp.QuoteMeta(msg))))
		}
	}
	if bad := storageErrors(log); len(bad) > 0 {
		t.Errorf("kube-apiserver logged %d storage errors:\n%s", len(bad), strings.Join(bad, "\n"))
	}

	// The datastore itself logged no errors (rhizome logs with slog, etcd
	// with zap as JSON).
	dlog, err := c.ReadLog(kube.ComponentDatastore)
	if err != nil {
		t.Fatal(err)
	}
	if bad := grep(dlog, regexp.MustCompile(`level=ERROR|"level":"error"`)); bad != "" {
		t.Errorf("the datastore logged errors:\n%s", bad)
	}
}

// logLevel matches klog's warning and error lines.
var logLevel = regexp.MustCompile(`^[EW]\d{4} `)

// storagePattern marks a kube-apiserver log line as about its datastore.
// (Not bare "storage" or "lease": API group names and the apiserver's
// identity leases would match.)
var storagePattern = regexp.MustCompile(`(?i)etcd|StorageError|storage error|rpc error|grpc|cacher|watch ?cache|compact|lease_manager|revision|decode|transformer|internal error`)

// benignPatterns are warnings and errors kube-apiserver logs on etcd too,
// each with why it is no fault of the datastore.
var benignPatterns = []struct {
	re  *regexp.Regexp
	why string
}{
	// The watch of a reflector whose resourceVersion was compacted away
	// ends and it relists: the compaction scenario does this on purpose.
	{regexp.MustCompile(`watch of \S+ ended with: (The resourceVersion for the provided watch is too old|too old resource version)`), "compaction"},
	// Lists at a compacted resourceVersion, asked for by the scenario.
	{regexp.MustCompile(`required revision has been compacted|The provided continue parameter is too old`), "compaction"},
	// The etcd client's gRPC dialer, when the apiserver closes a client it
	// opened for a short check while it was still connecting: every error
	// here is local to the apiserver's side of the connection.
	{regexp.MustCompile(`grpc: addrConn.createTransport failed to connect to .*(operation was canceled|context canceled|use of closed network connection)`), "client closed while dialing"},
	// The endpoint reconciler keeps its lease (so it does use storage),
	// but the Endpoints of the kubernetes Service reject the loopback
	// --advertise-address: a validation error, not a storage one.
	{regexp.MustCompile(`Resetting endpoints for master service "kubernetes" to \[127.0.0.1\]|unable to sync kubernetes service: Endpoints "kubernetes" is invalid: .*may not be in the loopback range`), "loopback advertise address"},
}

// storageErrors returns the warning and error lines of a kube-apiserver
// log that are about storage and not known to be benign.
func storageErrors(log string) []string {
	var out []string
lines:
	for _, line := range strings.Split(log, "\n") {
		if !logLevel.MatchString(line) || !storagePattern.MatchString(line) {
			continue
		}
		for _, b := range benignPatterns {
			if b.re.MatchString(line) {
				continue lines
			}
		}
		out = append(out, line)
	}
	return out
}

func grep(log string, re *regexp.Regexp) string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if re.MatchString(line) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}

func series(m kube.Metrics, name string) []string {
	var out []string
	for _, s := range m {
		if s.Name == name {
			out = append(out, fmt.Sprintf("%v=%v", s.Labels, s.Value))
		}
	}
	slices.Sort(out)
	return out
}

// TestStorageErrors checks the log filter of testHealth on lines taken
// from real kube-apiserver logs, so a storage error cannot slip through it
// unnoticed and noise does not fail the scenario.
func TestStorageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		line string
		bad  bool
	}{
		{"watch chan error", `E1122 05:04:55.928411   27285 watcher.go:342] watch chan error: etcdserver: mvcc: required revision is a future revision`, true},
		{"storage error", `E1122 05:04:55.928411   27285 status.go:71] "Unhandled Error" err="apiserver received an error that is not an metav1.Status: StorageError: invalid object, Code: 4"`, true},
		{"decode error", `E1122 05:04:55.928411   27285 cacher.go:478] cacher (pods): unexpected ListAndWatch error: failed to list *core.Pod: unable to decode an event from the watch stream`, true},
		{"rpc error", `W1122 05:04:55.928411   27285 reflector.go:569] storage/cacher.go:/pods: failed to list *core.Pod: rpc error: code = Unavailable desc = error reading from server: EOF`, true},
		{"progress unsupported", `W1122 05:04:55.928411   27285 feature_support_checker.go:133] RequestWatchProgress feature is not supported by "http://127.0.0.1:1" endpoint`, false}, // checked on its own, at any level
		{"info line", `I1122 05:04:55.928411   27285 cacher.go:478] cacher (pods): initialized`, false},
		{"API group names", `W1122 05:17:40.286649   16197 genericapiserver.go:798] Skipping API storage.k8s.io/v1beta1 because it has no resources.`, false},
		{"identity lease race", `E1122 05:17:41.146516   16197 controller.go:201] "Failed to ensure lease exists, will retry" err="namespaces \"kube-system\" not found" interval="200ms"`, false},
		{"dial canceled", `W1122 05:06:45.167207   29969 logging.go:55] [core] [Channel #7 SubChannel #8] grpc: addrConn.createTransport failed to connect to {Addr: "127.0.0.1:38899", ServerName: "127.0.0.1:38899", }. Err: connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:38899: operation was canceled"`, false},
		{"dial refused", `W1122 05:06:45.167207   29969 logging.go:55] [core] [Channel #7 SubChannel #8] grpc: addrConn.createTransport failed to connect to {Addr: "127.0.0.1:38899", ServerName: "127.0.0.1:38899", }. Err: connection error: desc = "transport: Error while dialing: dial tcp 127.0.0.1:38899: connect: connection refused"`, true},
		{"loopback endpoints", `E1122 05:06:45.167207   29969 controller.go:163] "Unhandled Error" err="unable to sync kubernetes service: Endpoints \"kubernetes\" is invalid: subsets[0].addresses[0].ip: Invalid value: \"127.0.0.1\": may not be in the loopback range (127.0.0.0/8, ::1/128)" logger="UnhandledError"`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := len(storageErrors(tc.line)) > 0; got != tc.bad {
				t.Errorf("storageErrors flags %q: %v, want %v", tc.line, got, tc.bad)
			}
		})
	}
}
