package testbin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ProcessConfig says how to run one server process.
type ProcessConfig struct {
	// Name identifies the process in errors ("etcd", "kube-apiserver").
	Name string
	// Path and Args are the binary and its arguments.
	Path string
	Args []string
	// Dir is the working directory; empty means the caller's.
	Dir string
	// Env is the environment; nil means the caller's.
	Env []string
	// LogPath receives stdout and stderr, appended to after a header line
	// with the command; required, so a failure can show the log.
	LogPath string
	// StreamStdout sends standard output to the reader Process.Stdout
	// returns instead of the log (standard error still goes to the log):
	// for a command whose output is read as it comes, such as
	// `kubectl get -w`.
	StreamStdout bool
	// StdinPipe gives the process a standard input the caller writes
	// through Process.Stdin (an interactive `etcdctl watch -i`); without
	// it the process reads nothing.
	StdinPipe bool
	// StopGrace is how long Stop waits after SIGTERM before it kills.
	StopGrace time.Duration
	// ReadyInterval is how often WaitReady asks.
	ReadyInterval time.Duration
}

// DefaultProcessConfig has the timings; Name, Path and LogPath are the
// caller's.
func DefaultProcessConfig() ProcessConfig {
	return ProcessConfig{StopGrace: 10 * time.Second, ReadyInterval: 100 * time.Millisecond}
}

// Validate reports the first problem with the configuration.
func (c ProcessConfig) Validate() error {
	switch {
	case c.Name == "" || c.Path == "":
		return errors.New("testbin: process: Name and Path are required")
	case c.LogPath == "":
		return fmt.Errorf("testbin: process %s: LogPath is required", c.Name)
	case c.StopGrace <= 0 || c.ReadyInterval <= 0:
		return fmt.Errorf("testbin: process %s: StopGrace and ReadyInterval must be positive", c.Name)
	}
	return nil
}

// ErrExited is wrapped by every error about a process that ended when it
// should have been running.
var ErrExited = errors.New("exited")

// Process is one running server whose output goes to a log file. On Linux
// the kernel kills it if the process that started it dies, so no server
// outlives a crashed or interrupted run. Its methods are safe for
// concurrent use.
type Process struct {
	cfg     ProcessConfig
	cmd     *exec.Cmd
	stdout  *os.File      // the read end of standard output, with StreamStdout
	stdin   *os.File      // the write end of standard input, with StdinPipe
	done    chan struct{} // closed when the process has exited
	waitErr error         // valid once done is closed
	stop    sync.Once
	stopErr error
}

// StartProcess starts cfg.Path. It returns once the process runs; WaitReady
// tells when it serves.
func StartProcess(cfg ProcessConfig) (*Process, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(cfg.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("testbin: %s log: %w", cfg.Name, err)
	}
	fmt.Fprintf(f, "### %s %s\n", cfg.Path, strings.Join(cfg.Args, " "))
	cmd := exec.Command(cfg.Path, cfg.Args...)
	cmd.Dir, cmd.Env = cfg.Dir, cfg.Env
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = childProcAttr()
	stdout, stdin, closeChildEnds, err := attachPipes(cmd, cfg)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("testbin: %s pipes: %w", cfg.Name, err)
	}
	err = cmd.Start()
	closeChildEnds() // the child holds its own copies
	if err != nil {
		f.Close()
		for _, x := range []*os.File{stdout, stdin} {
			if x != nil {
				x.Close()
			}
		}
		return nil, fmt.Errorf("testbin: start %s: %w", cfg.Name, err)
	}
	p := &Process{cfg: cfg, cmd: cmd, stdout: stdout, stdin: stdin, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// attachPipes gives cmd the pipes cfg asks for and returns the caller's
// ends, and a function that closes the child's ends once it has started.
// These are os.Pipes rather than cmd.StdoutPipe and StdinPipe: the child
// uses its ends itself, so the goroutine that waits for the process never
// closes a pipe under a caller that has not read everything yet.
func attachPipes(cmd *exec.Cmd, cfg ProcessConfig) (stdout, stdin *os.File, closeChildEnds func(), err error) {
	var child []*os.File
	closeChildEnds = func() {
		for _, x := range child {
			x.Close()
		}
	}
	if cfg.StreamStdout {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, nil, nil, err
		}
		stdout, cmd.Stdout, child = r, w, append(child, w)
	}
	if cfg.StdinPipe {
		r, w, err := os.Pipe()
		if err != nil {
			closeChildEnds()
			if stdout != nil {
				stdout.Close()
			}
			return nil, nil, nil, err
		}
		stdin, cmd.Stdin, child = w, r, append(child, r)
	}
	return stdout, stdin, closeChildEnds, nil
}

// Stdin is the process's standard input with StdinPipe, nil without.
// Closing it gives the process end of input; Stop and Kill close it.
func (p *Process) Stdin() io.WriteCloser {
	if p.stdin == nil {
		return nil
	}
	return p.stdin
}

// Stdout is the process's standard output with StreamStdout, nil without.
// It ends (io.EOF) once the process has exited and everything it wrote has
// been read. Stop and Kill close it: a read then returns an error at once,
// and what was not read is gone. Read it from one goroutine.
func (p *Process) Stdout() io.Reader {
	if p.stdout == nil {
		return nil
	}
	return p.stdout
}

// Name is the process's name from its config.
func (p *Process) Name() string { return p.cfg.Name }

// PID is the operating system's id of the process.
func (p *Process) PID() int { return p.cmd.Process.Pid }

// LogPath is the file holding the process's output.
func (p *Process) LogPath() string { return p.cfg.LogPath }

// Done is closed when the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Alive returns nil while the process runs, and an error wrapping
// ErrExited, with the tail of its log, once it has ended.
func (p *Process) Alive() error {
	select {
	case <-p.done:
		return fmt.Errorf("testbin: %s %w (%v); last lines of %s:\n%s", p.cfg.Name, ErrExited, p.waitErr, p.cfg.LogPath, p.LogTail(20))
	default:
		return nil
	}
}

// WaitReady calls ready every ReadyInterval until it returns nil, the
// process exits, or timeout passes; the error then carries the log's tail.
// Each call of ready gets a context bounded by the remaining time.
func (p *Process) WaitReady(ctx context.Context, timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		last := ready(ctx)
		if last == nil {
			return nil
		}
		if err := p.Alive(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("testbin: %s not ready within %v: %v; last lines of %s:\n%s", p.cfg.Name, timeout, last, p.cfg.LogPath, p.LogTail(20))
		case <-p.done:
		case <-time.After(p.cfg.ReadyInterval):
		}
	}
}

// Stop sends SIGTERM, waits up to StopGrace, then kills. It returns an
// error only if the process had to be killed: an exit status after SIGTERM
// is normal. Later calls return the first call's result.
func (p *Process) Stop() error {
	p.stop.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(p.cfg.StopGrace):
			_ = p.cmd.Process.Kill()
			<-p.done
			p.stopErr = fmt.Errorf("testbin: %s did not exit within %v of SIGTERM; killed", p.cfg.Name, p.cfg.StopGrace)
		}
	})
	p.closePipes()
	return p.stopErr
}

// Kill kills the process at once and waits until it is gone.
func (p *Process) Kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
	p.closePipes()
}

func (p *Process) closePipes() {
	for _, x := range []*os.File{p.stdout, p.stdin} {
		if x != nil {
			_ = x.Close() // a second close's error says only that
		}
	}
}

// Log returns the process's whole log so far (after the header line with
// the command, output of earlier starts appended to the same file
// included).
func (p *Process) Log() (string, error) {
	data, err := os.ReadFile(p.cfg.LogPath)
	if err != nil {
		return "", fmt.Errorf("testbin: %s log: %w", p.cfg.Name, err)
	}
	return string(data), nil
}

// LogTail returns the last n lines of the process's log.
func (p *Process) LogTail(n int) string {
	data, err := os.ReadFile(p.cfg.LogPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.cfg.LogPath, err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	return string(bytes.Join(lines[max(0, len(lines)-n):], []byte("\n")))
}

// PortInUse reports whether the log says the process could not bind: a
// free port picked for it (FreePort) was taken in the meantime, and the
// caller should start it again on fresh ports.
func (p *Process) PortInUse() bool {
	data, err := os.ReadFile(p.cfg.LogPath)
	return err == nil && bytes.Contains(data, []byte("address already in use"))
}
