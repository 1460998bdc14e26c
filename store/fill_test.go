package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// podJSON returns a pod-shaped object of about 2 KB, nested like a real Pod;
// gen varies its status, as a kubelet's status updates do.
func podJSON(i, gen int) []byte {
	name := fmt.Sprintf("web-%07d", i)
	ready := "True"
	if gen%2 == 1 {
		ready = "False"
	}
	return fmt.Appendf(nil, `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"%[1]s","namespace":"ns-%[2]d","uid":"6f1c7c1e-%08[3]d-4b6e-9c1d-5a3a0e%06[3]d","resourceVersion":"","creationTimestamp":"2026-01-01T00:00:00Z","labels":{"app":"web","pod-template-hash":"7d9f8c6b5","tier":"frontend"},"annotations":{"kubectl.kubernetes.io/restartedAt":"2026-01-01T00:00:00Z","prometheus.io/scrape":"true"},"ownerReferences":[{"apiVersion":"apps/v1","kind":"ReplicaSet","name":"web-7d9f8c6b5","uid":"0a2b4c6d-1111-2222-3333-444455556666","controller":true,"blockOwnerDeletion":true}]},"spec":{"volumes":[{"name":"kube-api-access","projected":{"sources":[{"serviceAccountToken":{"expirationSeconds":3607,"path":"token"}},{"configMap":{"name":"kube-root-ca.crt","items":[{"key":"ca.crt","path":"ca.crt"}]}}],"defaultMode":420}}],"containers":[{"name":"web","image":"registry.example.com/web:1.25.%[3]d","ports":[{"name":"http","containerPort":8080,"protocol":"TCP"}],"env":[{"name":"MODE","value":"production"},{"name":"LOG_LEVEL","value":"info"}],"resources":{"limits":{"cpu":"500m","memory":"256Mi"},"requests":{"cpu":"100m","memory":"128Mi"}},"volumeMounts":[{"name":"kube-api-access","readOnly":true,"mountPath":"/var/run/secrets/kubernetes.io/serviceaccount"}],"livenessProbe":{"httpGet":{"path":"/healthz","port":8080,"scheme":"HTTP"},"timeoutSeconds":1,"periodSeconds":10,"successThreshold":1,"failureThreshold":3},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"IfNotPresent"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","serviceAccountName":"default","nodeName":"edge-node-%[4]d","securityContext":{},"schedulerName":"default-scheduler","tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300},{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"},"status":{"phase":"Running","conditions":[{"type":"Initialized","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-01-01T00:00:%02[5]dZ"},{"type":"Ready","status":"%[6]s","lastProbeTime":null,"lastTransitionTime":"2026-01-01T00:01:%02[5]dZ"},{"type":"ContainersReady","status":"%[6]s","lastProbeTime":null,"lastTransitionTime":"2026-01-01T00:01:%02[5]dZ"},{"type":"PodScheduled","status":"True","lastProbeTime":null,"lastTransitionTime":"2026-01-01T00:00:00Z"}],"hostIP":"10.0.%[4]d.1","podIP":"10.244.%[4]d.%[7]d","podIPs":[{"ip":"10.244.%[4]d.%[7]d"}],"startTime":"2026-01-01T00:00:00Z","containerStatuses":[{"name":"web","state":{"running":{"startedAt":"2026-01-01T00:00:%02[5]dZ"}},"lastState":{},"ready":%[8]t,"restartCount":%[9]d,"image":"registry.example.com/web:1.25.%[3]d","imageID":"registry.example.com/web@sha256:4f7b3a1e9c2d8b6a5f0e1d2c3b4a59687766554433221100ffeeddccbbaa9988","containerID":"containerd://9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b","started":true}],"qosClass":"Burstable"}}`,
		name, i%20, i, i%16, gen%60, ready, i%250+1, gen%2 == 0, gen)
}

// BenchmarkFillPods writes b.N pod-shaped objects with 16 clients, then b.N
// status updates to them, and reports each phase's rate (and its last tenth's
// against its first), the Go heap and the resident memory after each phase and
// after FILL_IDLE (default 0s) idle. Run it with a fixed count:
//
//	go test -run '^$' -bench FillPods -benchtime 50000x ./store/
func BenchmarkFillPods(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.Site = b.TempDir(), "bench"
	s, err := Open(cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	n := b.N
	b.ResetTimer()
	for phase, gen := range []int{0, 1} {
		name := [...]string{"fill", "update"}[phase]
		cpu := cpuTime()
		rate, decay := fillPhase(b, s, n, gen)
		b.ReportMetric(float64((cpuTime()-cpu).Microseconds())/float64(n), name+"-cpu-µs/op")
		b.ReportMetric(rate, name+"/s")
		b.ReportMetric(decay, name+"-last/first")
		reportMemory(b, name)
	}
	b.StopTimer()
	if idle, _ := time.ParseDuration(os.Getenv("FILL_IDLE")); idle > 0 {
		time.Sleep(idle)
		reportMemory(b, "idle")
	}
}

// fillPhase writes keys 0..n-1 with 16 clients and returns the rate and the
// last tenth's rate over the first tenth's.
func fillPhase(b *testing.B, s *Store, n, gen int) (rate, decay float64) {
	var next atomic.Int64
	tenths := make([]time.Duration, 10)
	var mu sync.Mutex
	start := time.Now()
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				key := fmt.Appendf(nil, "/registry/pods/ns-%d/web-%07d", i%20, i)
				if _, err := s.Write(context.Background(), func(tx TxnWrite) error { return tx.Put(key, podJSON(i, gen), 0) }); err != nil {
					b.Error(err)
					return
				}
				if t := (i + 1) * 10 / n; (i+1)*10%n == 0 && t > 0 {
					mu.Lock()
					tenths[t-1] = time.Since(start)
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	total := time.Since(start)
	first, last := tenths[0], total-tenths[8]
	return float64(n) / total.Seconds(), first.Seconds() / last.Seconds()
}

// reportMemory reports the Go heap in use and the resident set, in MiB.
func reportMemory(b *testing.B, at string) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/(1<<20), at+"-heap-MiB")
	b.ReportMetric(float64(ms.HeapSys-ms.HeapReleased)/(1<<20), at+"-heapsys-MiB")
	b.ReportMetric(float64(residentBytes())/(1<<20), at+"-rss-MiB")
	b.ReportMetric(float64(statusBytes("RssAnon:"))/(1<<20), at+"-anon-MiB")
	if os.Getenv("FILL_SMAPS") != "" {
		b.Logf("%s: resident by file: %v", at, residentByFile())
	}
	if dir := os.Getenv("FILL_PROFILES"); dir != "" {
		f, err := os.Create(filepath.Join(dir, "heap-"+at+".prof"))
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.WriteHeapProfile(f); err != nil {
			b.Fatal(err)
		}
	}
}

// residentByFile sums the resident memory of file mappings by file suffix
// (.sst, .mem, .vlog), in MiB, from /proc/self/smaps.
func residentByFile() map[string]int64 {
	raw, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return nil
	}
	out := map[string]int64{}
	cur := ""
	for _, line := range strings.Split(string(raw), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) >= 6 && strings.Contains(f[0], "-"):
			cur = filepath.Ext(f[5])
			if len(f) > 6 {
				cur += " " + f[6] // (deleted)
			}
		case len(f) == 3 && f[0] == "Rss:" && cur != "":
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			out[cur] += kb
		}
	}
	for k, v := range out {
		out[k] = v >> 10
	}
	return out
}

// statusBytes reads one kB figure of /proc/self/status, in bytes.
func statusBytes(field string) int64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// cpuTime returns the CPU time this process has used, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// residentBytes reads this process's resident set from /proc/self/statm.
func residentBytes() int64 {
	raw, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(raw))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}
