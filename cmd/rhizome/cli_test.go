package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// runBin runs the real binary in dir with env added to a clean environment and
// returns its exit code, stdout and stderr.
func runBin(t *testing.T, dir string, env []string, args ...string) (int, string, string) {
	t.Helper()
	bin := rhizomeBuild.Path(t) // built once, before the command's minute starts
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, stdout.String(), stderr.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), stdout.String(), stderr.String()
	}
	t.Fatalf("rhizome %v: %v", args, err)
	return 0, "", ""
}

// TestHelpAndVersion: help and version exit 0 on stdout; every command's help
// has its one-line description and an example.
func TestHelpAndVersion(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{"--help"}, {"-h"}, {"help"}} {
		code, out, _ := runBin(t, dir, nil, args...)
		if code != 0 || !strings.Contains(out, "serve ") || !strings.Contains(out, "version") {
			t.Errorf("rhizome %v: exit %d, stdout:\n%s", args, code, out)
		}
	}
	for _, args := range [][]string{{"--version"}, {"version"}} {
		code, out, _ := runBin(t, dir, nil, args...)
		if code != 0 || !strings.HasPrefix(out, "rhizome ") || strings.Count(out, "\n") != 1 {
			t.Errorf("rhizome %v: exit %d, stdout %q", args, code, out)
		}
	}
	for _, name := range []string{"serve", "check"} {
		c := commands()[name]
		code, out, _ := runBin(t, dir, nil, name, "--help")
		if code != 0 || !strings.Contains(out, c.summary) || !strings.Contains(out, "example:\n  "+c.example) {
			t.Errorf("rhizome %s --help: exit %d, stdout:\n%s", name, code, out)
		}
	}
	if code, _, errOut := runBin(t, dir, nil, "frobnicate"); code != 2 || strings.Count(errOut, "\n") != 1 {
		t.Errorf("rhizome frobnicate: exit %d, stderr:\n%s", code, errOut)
	}
}

// TestBadConfigLeavesNothing: a bad value, wherever it comes from, fails start
// with exit 2 and one line naming the flag and the value, and no data
// directory is created.
func TestBadConfigLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "bad.yaml"), []byte("name: s1\nmax-request-bytes: -7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		env  []string
		args []string
		want []string
	}{
		{"flag", nil, []string{"--max-request-bytes", "-5"}, []string{"--max-request-bytes -5"}},
		{"unparsable flag", nil, []string{"--max-request-bytes", "big"}, []string{"--max-request-bytes", `"big"`}},
		{"unknown flag", nil, []string{"--max-requests-bytes", "5"}, []string{"--max-requests-bytes"}},
		{"env", []string{"RHIZOME_ANTI_ENTROPY_INTERVAL=often"}, nil, []string{"--anti-entropy-interval", `"often"`, "RHIZOME_ANTI_ENTROPY_INTERVAL"}},
		{"file", nil, []string{"--config-file", "bad.yaml"}, []string{"--max-request-bytes -7"}},
		{"missing cert", nil, []string{"--cert-file", "nope.pem", "--key-file", "nope.key"}, []string{"--cert-file", "nope.pem"}},
		{"cross-flag", nil, []string{"--listen-peer-urls", "http://127.0.0.1:1"}, []string{"--gossip-addr"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, _, errOut := runBin(t, dir, c.env, append([]string{"serve", "--data-dir", "site.rhizome"}, c.args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
			if strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "run 'rhizome serve --help'") {
				t.Errorf("want one line and the hint, got:\n%s", errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr %q does not name %s", errOut, w)
				}
			}
			if _, err := os.Stat(filepath.Join(dir, "site.rhizome")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the data directory exists after a refused start (%v)", err)
			}
		})
	}
	// A start that fails after validation (the client port is taken) removes
	// the data directory it created.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	code, _, errOut := runBin(t, dir, nil, "serve", "--data-dir", "site.rhizome", "--listen-client-urls", "http://"+taken.Addr().String())
	if code != 1 || !strings.Contains(errOut, taken.Addr().String()) {
		t.Errorf("port taken: exit %d, stderr:\n%s", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(dir, "site.rhizome")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the data directory exists after a failed start (%v)", err)
	}
}

// TestServeFromEnvAndFile starts the real binary configured by a file and the
// environment and checks, through an etcd client, which values won: the
// command line over the environment over the file.
func TestServeFromEnvAndFile(t *testing.T) {
	dir := t.TempDir()
	port := testbin.Port(t)
	file := fmt.Sprintf("name: from-file\nlisten-client-urls: [http://127.0.0.1:%d]\nlog-level: debug\n", port)
	if err := os.WriteFile(filepath.Join(dir, "rhizome.yaml"), []byte(file), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(rhizomeBuild.Path(t), "serve", "--log-level", "info")
	cmd.Dir = dir
	cmd.Env = []string{"RHIZOME_CONFIG_FILE=rhizome.yaml", "RHIZOME_NAME=from-env", "RHIZOME_LOG_LEVEL=warn"}
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	logs := func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		cmd.Process.Signal(syscall.SIGTERM)
		if err := <-done; err != nil {
			t.Errorf("rhizome serve after SIGTERM: %v\n%s", err, logs())
		}
	}()

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{fmt.Sprintf("127.0.0.1:%d", port)},
		DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var members *clientv3.MemberListResponse
	for members, err = cli.MemberList(ctx); err != nil && ctx.Err() == nil; members, err = cli.MemberList(ctx) {
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("no answer on the file's client URL: %v\n%s", err, logs())
	}
	if len(members.Members) != 1 || members.Members[0].Name != "from-env" {
		t.Errorf("members %v: want one named from-env (the environment beats the file)", members.Members)
	}
	if _, err := os.Stat(filepath.Join(dir, "from-env.rhizome")); err != nil {
		t.Errorf("default data dir of the env's name: %v", err)
	}
	// --log-level info on the command line beats warn (env) and debug (file):
	// the start is logged at INFO.
	if !strings.Contains(logs(), "level=INFO") || strings.Contains(logs(), "level=DEBUG") {
		t.Errorf("log level is not the command line's info:\n%s", logs())
	}
}
