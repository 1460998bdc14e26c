package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rhizome-kv/rhizome/internal/kube"
	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// server is one benchmarked process: its own data directory, loopback
// ports, and a log file kept for error messages.
type server struct {
	system   string
	proc     *testbin.Process
	endpoint string // host:port of the client URL
}

// startAttempts bounds the restarts on fresh ports when a free port was
// taken before the server bound it.
const startAttempts = 3

// startRhizome starts `rhizome serve` with its defaults (fsync on) in a fresh
// data directory under dir and waits until it answers.
func startRhizome(ctx context.Context, bin, dir string, timeout time.Duration) (*server, error) {
	return startServer(ctx, SystemRhizome, bin, dir, timeout, func(client, _ string) []string {
		return rhizomeArgs(dir, client)
	})
}

// rhizomeArgs are the arguments of a benchmarked `rhizome serve` alone.
func rhizomeArgs(dir, client string) []string {
	return []string{"serve", "--name", "bench",
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", "http://" + client,
		"--log-level", "warn"}
}

// startRhizomeSite is startRhizome as one of several sites: it listens for
// peers and gossips (on loopback), though no other site joins, so it does
// what a site that merges with others does on every write: it edits
// documents field by field and logs its changes. Alone (startRhizome) it
// writes values whole.
func startRhizomeSite(ctx context.Context, bin, dir string, timeout time.Duration) (*server, error) {
	gossip, err := testbin.FreePort()
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	return startServer(ctx, SystemRhizome, bin, dir, timeout, func(client, peer string) []string {
		return append(rhizomeArgs(dir, client), "--listen-peer-urls", "http://"+peer, "--gossip-addr", gossip)
	})
}

// startEtcd starts a single-member etcd with its defaults (fsync on) in a
// fresh data directory under dir and waits until it answers.
func startEtcd(ctx context.Context, bin, dir string, timeout time.Duration) (*server, error) {
	return startServer(ctx, SystemEtcd, bin, dir, timeout, func(client, peer string) []string {
		return []string{"--name", "bench",
			"--data-dir", filepath.Join(dir, "data"),
			"--listen-client-urls", "http://" + client,
			"--advertise-client-urls", "http://" + client,
			"--listen-peer-urls", "http://" + peer,
			"--initial-advertise-peer-urls", "http://" + peer,
			"--initial-cluster", "bench=http://" + peer,
			"--log-level", "warn"}
	})
}

// startServer starts bin with the arguments args gives for a client and a
// peer address, waits until it answers a Status call, and starts it again
// on fresh ports if it lost a port to another process meanwhile.
func startServer(ctx context.Context, system, bin, dir string, timeout time.Duration, args func(client, peer string) []string) (*server, error) {
	var lastErr error
	for range startAttempts {
		client, err1 := testbin.FreePort()
		peer, err2 := testbin.FreePort()
		if err := errors.Join(err1, err2); err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		cfg := testbin.DefaultProcessConfig()
		cfg.Name, cfg.Path, cfg.Args, cfg.Dir = system, bin, args(client, peer), dir
		// Fine enough to time a restart (bench fill) to a few hundredths.
		cfg.ReadyInterval = 20 * time.Millisecond
		cfg.LogPath = filepath.Join(dir, system+".log")
		p, err := testbin.StartProcess(cfg)
		if err != nil {
			return nil, fmt.Errorf("bench: %w", err)
		}
		s := &server{system: system, proc: p, endpoint: client}
		if lastErr = p.WaitReady(ctx, timeout, s.answers); lastErr == nil {
			return s, nil
		}
		s.stop()
		if !p.PortInUse() {
			break
		}
	}
	return nil, fmt.Errorf("bench: %w", lastErr)
}

// answers is a readiness check: the server answers a Status call.
func (s *server) answers(ctx context.Context) error {
	cli, err := newClient(s.endpoint)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	_, err = cli.Status(ctx, s.endpoint)
	return err
}

// alive reports an error, with the log's tail, if the process has exited.
func (s *server) alive() error {
	if err := s.proc.Alive(); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}

// stop asks the server to shut down and kills it if it has not within the
// grace period.
func (s *server) stop() { _ = s.proc.Stop() }

// cpuTime returns the user+system CPU time the process has used so far.
func (s *server) cpuTime() (time.Duration, error) { return procCPU(strconv.Itoa(s.proc.PID())) }

// procCPU returns the user+system CPU time process pid ("self" for this one)
// has used so far.
func procCPU(pid string) (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, errNoProc
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14, stime 15 (man 5 proc).
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, errNoProc
	}
	f := strings.Fields(string(data[i+1:]))
	if len(f) < 13 {
		return 0, errNoProc
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, errNoProc
	}
	return ticks(utime + stime), nil
}

// ticks converts clock ticks to time. USER_HZ is 100 on every Linux that Go
// supports.
func ticks(n int64) time.Duration { return time.Duration(n) * (time.Second / 100) }

// machineBusy returns the CPU time all processors have spent not idle since
// boot, from /proc/stat.
func machineBusy() (time.Duration, error) {
	data, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, errNoProc
	}
	line, _, _ := strings.Cut(string(data), "\n")
	f := strings.Fields(line)
	if len(f) < 6 || f[0] != "cpu" {
		return 0, errNoProc
	}
	var busy int64
	for i, v := range f[1:] {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, errNoProc
		}
		// idle and iowait (the 4th and 5th) are not busy; guest time (9th,
		// 10th) is already counted in user and nice.
		if i != 3 && i != 4 && i < 8 {
			busy += n
		}
	}
	return ticks(busy), nil
}

// cpuMeter measures what the machine does during a cell besides the
// benchmark: busy CPU time minus this process's and the servers'.
type cpuMeter struct {
	pids  []int // the servers' processes
	start time.Duration
	at    time.Time
	ok    bool
}

func (m *cpuMeter) own() (time.Duration, error) {
	own, err := procCPU("self")
	for _, pid := range m.pids {
		t, e := procCPU(strconv.Itoa(pid))
		own += t
		err = errors.Join(err, e)
	}
	return own, err
}

func (m *cpuMeter) begin() {
	busy, err1 := machineBusy()
	own, err2 := m.own()
	m.start, m.at, m.ok = busy-own, time.Now(), errors.Join(err1, err2) == nil
}

// otherCores returns the CPU the rest of the machine used since begin, in
// cores (1.0 = one processor busy all the time), or -1 if it cannot tell.
func (m *cpuMeter) otherCores() float64 {
	busy, err1 := machineBusy()
	own, err2 := m.own()
	elapsed := time.Since(m.at)
	if !m.ok || errors.Join(err1, err2) != nil || elapsed <= 0 {
		return -1
	}
	return max(0, float64(busy-own-m.start)/float64(elapsed))
}

// rssBytes returns the process's resident set size.
func (s *server) rssBytes() (int64, error) { return procRSS(s.proc.PID()) }

// procRSS returns process pid's resident set size.
func procRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, errNoProc
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) >= 1 {
				kb, err := strconv.ParseInt(f[0], 10, 64)
				if err == nil {
					return kb << 10, nil
				}
			}
		}
	}
	return 0, errNoProc
}

// newClient opens one gRPC connection to endpoint.
func newClient(endpoint string) (*clientv3.Client, error) {
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 10 * time.Second,
		Logger:      zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("bench: client for %s: %w", endpoint, err)
	}
	return cli, nil
}

// loadAvg returns the 1-minute load average, or -1 when it cannot be read.
func loadAvg() float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return -1
	}
	f := strings.Fields(string(data))
	if len(f) == 0 {
		return -1
	}
	v, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return -1
	}
	return v
}

// metrics reads the server's /metrics from its client URL (Rhizome serves
// them there, as etcd does).
func (s *server) metrics(ctx context.Context) (kube.Metrics, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+s.endpoint+"/metrics", nil)
	if err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("bench: %s metrics: %w", s.system, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("bench: %s metrics: %s, %v", s.system, resp.Status, err)
	}
	m, err := kube.ParseMetrics(string(body))
	if err != nil {
		return nil, fmt.Errorf("bench: %s metrics: %w", s.system, err)
	}
	return m, nil
}
