package testbin

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strings"
)

// RunError is the error of a command Run ran that failed: it names the
// command and keeps what the command printed on its standard error.
type RunError struct {
	Command string // path and arguments
	Stderr  string
	Err     error // from exec: the exit status, or why it did not start
}

func (e *RunError) Error() string {
	return fmt.Sprintf("testbin: %s: %v: %s", e.Command, e.Err, strings.TrimSpace(e.Stderr))
}

func (e *RunError) Unwrap() error { return e.Err }

// Run runs path with args to completion (a one-shot command: ip, ss, git,
// a CLI under test; servers go through StartProcess) and returns its
// standard output. A failure is a *RunError. Cancelling ctx kills the
// command.
func Run(ctx context.Context, path string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = childProcAttr()
	if err := cmd.Run(); err != nil {
		return stdout.String(), &RunError{Command: strings.Join(append([]string{path}, args...), " "), Stderr: stderr.String(), Err: err}
	}
	return stdout.String(), nil
}
