package kube

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// stopGrace is how long a component gets to exit after SIGTERM before it is
// killed: kube-apiserver drains requests for a few seconds on shutdown.
const stopGrace = 15 * time.Second

// process is one running component whose stdout and stderr go to a log file.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	logFile *os.File

	done    chan struct{} // closed when the process has exited
	waitErr error         // valid after done is closed
	stop    sync.Once
}

// startProcess starts bin with args, its output appended to logPath.
func startProcess(name, logPath, bin string, args []string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("kube: %s log: %w", name, err)
	}
	fmt.Fprintf(f, "### %s %s\n", bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("kube: start %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, logFile: f, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// exited reports whether the process has ended, and how.
func (p *process) exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.waitErr
	default:
		return false, nil
	}
}

// Stop sends SIGTERM, waits up to stopGrace, then kills. It returns an
// error if the process had to be killed; an exit status after SIGTERM is
// not an error, components exit non-zero on signals.
func (p *process) Stop() error {
	var err error
	p.stop.Do(func() {
		if done, _ := p.exited(); done {
			return
		}
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(stopGrace):
			_ = p.cmd.Process.Kill()
			<-p.done
			err = fmt.Errorf("kube: %s did not exit within %v of SIGTERM; killed", p.name, stopGrace)
		}
	})
	return err
}

// logTail returns the last n lines of the process's log.
func (p *process) logTail(n int) string {
	data, err := os.ReadFile(p.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", p.logPath, err)
	}
	lines := bytes.Split(bytes.TrimRight(data, "\n"), []byte("\n"))
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return string(bytes.Join(lines, []byte("\n")))
}

// portInUse reports whether the process's log says it could not bind: the
// free port picked for it was taken by someone else in the meantime.
func (p *process) portInUse() bool {
	data, err := os.ReadFile(p.logPath)
	return err == nil && bytes.Contains(data, []byte("address already in use"))
}

// errExited is wrapped when a component ends while it is being waited for.
var errExited = errors.New("exited")

// freePort returns a loopback TCP port that was free a moment ago. Another
// process may take it before the component binds it; callers retry then.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("kube: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
