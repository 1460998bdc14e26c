package kube_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/rhizome-kv/rhizome/internal/kube"
	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// waitFor polls cond every 200ms until it is done, failing t with the last
// status after timeout. Every wait in these tests is bounded by one.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func(context.Context) (bool, string, error)) {
	t.Helper()
	start := time.Now()
	if err := kube.Poll(t.Context(), timeout, 200*time.Millisecond, cond); err != nil {
		t.Fatalf("waiting for %s: %v", what, err)
	}
	t.Logf("%s after %v", what, time.Since(start).Round(time.Millisecond))
}

// watchEvent is one line of `kubectl get -w --output-watch-events -o json`.
type watchEvent struct {
	Type   string `json:"type"`
	Object struct {
		metav1.TypeMeta
		Metadata metav1.ObjectMeta `json:"metadata"`
	} `json:"object"`
}

func (e watchEvent) String() string {
	md := e.Object.Metadata
	return fmt.Sprintf("%s %s rv=%s v=%s", e.Type, md.Name, md.ResourceVersion, md.Annotations["v"])
}

// kubectlWatch runs `kubectl get -w` with args and delivers its events.
type kubectlWatch struct {
	proc   *testbin.Process
	events chan watchEvent
	wg     sync.WaitGroup
	err    error // how the decoder stopped; valid after wg.Wait
}

func startKubectlWatch(t *testing.T, c *kube.Cluster, args ...string) *kubectlWatch {
	t.Helper()
	p, err := c.KubectlStream(append([]string{"get", "-w", "--output-watch-events", "-o", "json"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	w := &kubectlWatch{proc: p, events: make(chan watchEvent, 1000)}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		defer close(w.events)
		dec := json.NewDecoder(bufio.NewReader(p.Stdout()))
		for {
			var ev watchEvent
			if err := dec.Decode(&ev); err != nil {
				if err != io.EOF {
					w.err = err
				}
				return
			}
			w.events <- ev
		}
	}()
	t.Cleanup(w.stop)
	return w
}

func (w *kubectlWatch) stop() {
	_ = w.proc.Stop() // kubectl exits on SIGTERM; a kill is no test failure
	w.wg.Wait()
}

// next returns the next event, failing t if none comes within timeout.
func (w *kubectlWatch) next(t *testing.T, timeout time.Duration) watchEvent {
	t.Helper()
	select {
	case ev, ok := <-w.events:
		if !ok {
			t.Fatalf("kubectl get -w ended (%v); its log:\n%s", w.err, w.proc.LogTail(20))
		}
		return ev
	case <-time.After(timeout):
		t.Fatalf("no event from kubectl get -w within %v; its log:\n%s", timeout, w.proc.LogTail(20))
	}
	panic("unreachable")
}

// rvLess compares resourceVersions as numbers. Clients must treat them as
// opaque; these tests may not, because etcd semantics are what is checked.
func rvLess(a, b string) bool {
	if len(a) != len(b) {
		return len(a) < len(b)
	}
	return a < b
}
