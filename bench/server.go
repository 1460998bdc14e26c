package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// server is one benchmarked process: its own data directory, loopback
// ports, and a log file kept for error messages.
type server struct {
	system   string
	cmd      *exec.Cmd
	endpoint string // host:port of the client URL
	logPath  string
	exited   chan struct{} // closed when the process has exited
	waitErr  error         // set before exited is closed
}

// freePort asks the kernel for an unused loopback port. Another process could
// take it before the server binds it; startup then fails loudly.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// startRhizome starts `rhizome serve` with its defaults (fsync on) in a fresh
// data directory under dir.
func startRhizome(bin, dir string) (*server, error) {
	client, err := freePort()
	if err != nil {
		return nil, err
	}
	return startServer(SystemRhizome, bin, dir, client,
		"serve", "--name", "bench",
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", "http://"+client,
		"--log-level", "warn")
}

// startEtcd starts a single-member etcd with its defaults (fsync on) in a
// fresh data directory under dir.
func startEtcd(bin, dir string) (*server, error) {
	client, err := freePort()
	if err != nil {
		return nil, err
	}
	peer, err := freePort()
	if err != nil {
		return nil, err
	}
	return startServer(SystemEtcd, bin, dir, client,
		"--name", "bench",
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", "http://"+client,
		"--advertise-client-urls", "http://"+client,
		"--listen-peer-urls", "http://"+peer,
		"--initial-advertise-peer-urls", "http://"+peer,
		"--initial-cluster", "bench=http://"+peer,
		"--log-level", "warn")
}

func startServer(system, bin, dir, endpoint string, args ...string) (*server, error) {
	logPath := filepath.Join(dir, system+".log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("bench: %s: %w", system, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("bench: start %s: %w", system, err)
	}
	s := &server{system: system, cmd: cmd, endpoint: endpoint, logPath: logPath, exited: make(chan struct{})}
	go func() {
		s.waitErr = cmd.Wait()
		logFile.Close()
		close(s.exited)
	}()
	return s, nil
}

// waitReady returns once the server answers a Status call, or fails when it
// exits or timeout passes first.
func (s *server) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cli, err := newClient(s.endpoint)
	if err != nil {
		return err
	}
	defer cli.Close()
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, time.Second)
		_, err := cli.Status(attempt, s.endpoint)
		cancelAttempt()
		if err == nil {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("bench: %s exited during startup (%v); its log:\n%s", s.system, s.waitErr, s.logTail())
		case <-ctx.Done():
			return fmt.Errorf("bench: %s did not answer within %v (%v); its log:\n%s", s.system, timeout, err, s.logTail())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// alive reports an error, with the log's tail, if the process has exited.
func (s *server) alive() error {
	select {
	case <-s.exited:
		return fmt.Errorf("bench: %s exited (%v); its log:\n%s", s.system, s.waitErr, s.logTail())
	default:
		return nil
	}
}

// stop asks the server to shut down and kills it if it has not within 10 s.
func (s *server) stop() {
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

func (s *server) logTail() string {
	data, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

// cpuTime returns the user+system CPU time the process has used so far.
func (s *server) cpuTime() (time.Duration, error) { return procCPU(strconv.Itoa(s.cmd.Process.Pid)) }

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
	servers []*server
	start   time.Duration
	at      time.Time
	ok      bool
}

func (m *cpuMeter) own() (time.Duration, error) {
	own, err := procCPU("self")
	for _, s := range m.servers {
		t, e := s.cpuTime()
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
func (s *server) rssBytes() (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
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
