package testbin_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

func shell(t *testing.T, script string) testbin.ProcessConfig {
	t.Helper()
	cfg := testbin.DefaultProcessConfig()
	cfg.Name, cfg.Path, cfg.Args = "sh", "/bin/sh", []string{"-c", script}
	cfg.LogPath = filepath.Join(t.TempDir(), "sh.log")
	cfg.ReadyInterval = 10 * time.Millisecond
	return cfg
}

// logSays is a readiness check: the log holds want.
func logSays(p *testbin.Process, want string) func(context.Context) error {
	return func(context.Context) error {
		data, err := os.ReadFile(p.LogPath())
		if err != nil || !strings.Contains(string(data), want) {
			return errors.New("not yet")
		}
		return nil
	}
}

func TestProcessReadyAndStop(t *testing.T) {
	// The marker is computed, so the command line in the log's header
	// does not already hold it.
	p, err := testbin.StartProcess(shell(t, "echo listening-$((6*7)); exec sleep 30"))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.WaitReady(t.Context(), 10*time.Second, logSays(p, "listening-42")); err != nil {
		t.Fatal(err)
	}
	if err := p.Alive(); err != nil {
		t.Fatal(err)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := p.Alive(); !errors.Is(err, testbin.ErrExited) {
		t.Errorf("Alive after Stop: %v", err)
	}
	if !strings.HasPrefix(p.LogTail(10), "### /bin/sh -c") {
		t.Errorf("log does not start with the command: %q", p.LogTail(10))
	}
	if log, err := p.Log(); err != nil || !strings.HasSuffix(log, "listening-42\n") {
		t.Errorf("Log() = %q, %v", log, err)
	}
}

func TestProcessExitDuringStartup(t *testing.T) {
	// Computed, so the logged command line does not already say it.
	p, err := testbin.StartProcess(shell(t, `echo "bind: address already $(printf in) use"; exit 3`))
	if err != nil {
		t.Fatal(err)
	}
	err = p.WaitReady(t.Context(), 10*time.Second, logSays(p, "never"))
	if !errors.Is(err, testbin.ErrExited) || !strings.Contains(err.Error(), "address already in use") {
		t.Errorf("WaitReady: %v; want ErrExited with the log's tail", err)
	}
	if !p.PortInUse() {
		t.Error("PortInUse is false for a log that says so")
	}
}

func TestProcessNotReadyInTime(t *testing.T) {
	p, err := testbin.StartProcess(shell(t, "exec sleep 30"))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Kill()
	if err := p.WaitReady(t.Context(), 100*time.Millisecond, logSays(p, "never")); err == nil || errors.Is(err, testbin.ErrExited) {
		t.Errorf("WaitReady: %v; want a timeout", err)
	}
}

func TestProcessKilledAfterGrace(t *testing.T) {
	cfg := shell(t, "trap '' TERM; echo up; exec sleep 30") // sleep inherits the ignored SIGTERM
	cfg.StopGrace = 200 * time.Millisecond
	p, err := testbin.StartProcess(cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Ready once the shell has become sleep.
	isSleep := func(context.Context) error {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", p.PID()))
		if err != nil || strings.TrimSpace(string(comm)) != "sleep" {
			return errors.New("not yet")
		}
		return nil
	}
	if err := p.WaitReady(t.Context(), 10*time.Second, isSleep); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := p.Stop(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Stop: %v; want it killed", err)
	}
	if d := time.Since(start); d < cfg.StopGrace {
		t.Errorf("killed after %v, before the %v grace", d, cfg.StopGrace)
	}
}

// A streaming process's standard output reaches the reader whole, its
// standard error the log; the reader ends when the process does.
func TestProcessStreamStdout(t *testing.T) {
	cfg := shell(t, "for i in $(seq 1 2000); do echo line-$i; done; echo oops >&2")
	cfg.StreamStdout = true
	p, err := testbin.StartProcess(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	data, err := io.ReadAll(p.Stdout())
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 2000 || lines[0] != "line-1" || lines[1999] != "line-2000" {
		t.Errorf("read %d lines, first %q, last %q; want line-1..line-2000", len(lines), lines[0], lines[len(lines)-1])
	}
	<-p.Done()
	if log, err := p.Log(); err != nil || !strings.HasSuffix(log, "oops\n") || strings.Contains(log, "line-1\n") {
		t.Errorf("log %q, %v: want stderr only", log, err)
	}
}

// Stop ends a reader blocked on a process that prints nothing more, even
// when a child the process left behind (here a sleep of 6 s) still holds
// its standard output open.
func TestProcessStreamStop(t *testing.T) {
	cfg := shell(t, "echo first; sleep 6 & exec sleep 30")
	cfg.StreamStdout = true
	p, err := testbin.StartProcess(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(p.Stdout())
	if !sc.Scan() || sc.Text() != "first" {
		t.Fatalf("first line %q, %v", sc.Text(), sc.Err())
	}
	ended := make(chan bool)
	go func() { ended <- sc.Scan() }()
	if err := p.Stop(); err != nil {
		t.Error(err)
	}
	select {
	case more := <-ended:
		if more {
			t.Errorf("read %q after Stop", sc.Text())
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the reader still blocks after Stop")
	}
	if p.Stdout() == nil {
		t.Error("Stdout is nil")
	}
	if q, err := testbin.StartProcess(shell(t, "true")); err != nil || q.Stdout() != nil {
		t.Errorf("a process without StreamStdout has a stdout reader (%v)", err)
	}
}

// What the caller writes to Stdin reaches the process as it comes (an
// interactive `etcdctl watch -i`), and closing it ends the process's input.
func TestProcessStdinPipe(t *testing.T) {
	cfg := shell(t, "while read l; do echo got-$l; done; echo eof")
	cfg.StreamStdout, cfg.StdinPipe = true, true
	p, err := testbin.StartProcess(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Stop()
	sc := bufio.NewScanner(p.Stdout())
	for _, in := range []string{"a", "b"} {
		if _, err := io.WriteString(p.Stdin(), in+"\n"); err != nil {
			t.Fatal(err)
		}
		if !sc.Scan() || sc.Text() != "got-"+in {
			t.Fatalf("after %q: %q, %v", in, sc.Text(), sc.Err())
		}
	}
	p.Stdin().Close()
	if !sc.Scan() || sc.Text() != "eof" || sc.Scan() {
		t.Errorf("after closing stdin: %q, %v; want eof, then the end", sc.Text(), sc.Err())
	}
}

func TestProcessConfigValidate(t *testing.T) {
	cfg := testbin.DefaultProcessConfig()
	if _, err := testbin.StartProcess(cfg); err == nil {
		t.Error("started a process with no name, path or log")
	}
}

func TestFreePort(t *testing.T) {
	addr, err := testbin.FreePort()
	if err != nil || !strings.HasPrefix(addr, "127.0.0.1:") {
		t.Errorf("FreePort = %q, %v", addr, err)
	}
}
