package testbin

import (
	"bytes"
	"context"
	"fmt"
	"io"
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
	out, err := RunCmd(ctx, Cmd{Path: path, Args: args})
	return out.Stdout, err
}

// Cmd is a one-shot command for RunCmd.
type Cmd struct {
	Path string
	Args []string
	// Dir is the working directory and Env the environment; empty and
	// nil mean the caller's.
	Dir string
	Env []string
	// Stdin is the command's standard input; nil means none.
	Stdin io.Reader
}

// Output is what a command printed.
type Output struct {
	Stdout, Stderr string
}

// RunCmd is Run for a command that reads standard input or whose standard
// error matters when it succeeds too. A failure is a *RunError; the output
// so far is returned either way.
func RunCmd(ctx context.Context, c Cmd) (Output, error) {
	cmd := exec.CommandContext(ctx, c.Path, c.Args...)
	var stdout, stderr bytes.Buffer
	cmd.Dir, cmd.Env = c.Dir, c.Env
	cmd.Stdin, cmd.Stdout, cmd.Stderr = c.Stdin, &stdout, &stderr
	cmd.SysProcAttr = childProcAttr()
	err := cmd.Run()
	out := Output{Stdout: stdout.String(), Stderr: stderr.String()}
	if err != nil {
		return out, &RunError{Command: strings.Join(append([]string{c.Path}, c.Args...), " "), Stderr: out.Stderr, Err: err}
	}
	return out, nil
}
