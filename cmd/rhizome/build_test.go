package main

import (
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// moduleRoot is the repository root, seen from this package's directory.
const moduleRoot = "../.."

// TestMakeRunInterrupt runs `make run` as a terminal would and presses Ctrl-C
// (SIGINT to the whole process group): rhizome shuts down cleanly and make
// reports no error.
func TestMakeRunInterrupt(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Fatal("make is needed: it is one of the README's two commands")
	}
	dir := t.TempDir()
	port := testbin.Port(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "make", "--no-print-directory", "run", "BIN="+filepath.Join(dir, "rhizome"), "VERSION=test")
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), "RHIZOME_DATA_DIR="+filepath.Join(dir, "data"),
		fmt.Sprintf("RHIZOME_LISTEN_CLIENT_URLS=http://127.0.0.1:%d", port))
	logf, err := os.Create(filepath.Join(dir, "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	out := func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	for !strings.Contains(out(), "site serving") {
		select {
		case err := <-done:
			t.Fatalf("make run ended before serving (%v):\n%s", err, out())
		case <-time.After(200 * time.Millisecond):
		}
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	var waitErr error
	select {
	case waitErr = <-done:
	case <-time.After(time.Minute):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		t.Fatalf("make run still running a minute after SIGINT:\n%s", out())
	}
	// make re-raises the SIGINT it got after its child exits: dying of it, as
	// make does, is what a shell shows as a plain Ctrl-C.
	var exit *exec.ExitError
	if waitErr != nil && !(errors.As(waitErr, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGINT) {
		t.Errorf("make run: %v", waitErr)
	}
	if strings.Contains(out(), "***") || strings.Contains(out(), "Error") || !strings.Contains(out(), "shutting down") {
		t.Errorf("make run after Ctrl-C printed:\n%s", out())
	}
}

// TestStaticBinary is the CI check of the container image where no container
// runtime exists: it builds the binary exactly as deploy/Dockerfile does (the
// same script), checks that it is statically linked, and runs it.
func TestStaticBinary(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "rhizome")
	cmd := exec.Command("bash", "scripts/build-static.sh", bin)
	cmd.Dir = moduleRoot
	cmd.Env = append(os.Environ(), "VERSION=v0.0.0-static-test")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/build-static.sh: %v\n%s", err, out)
	}
	dockerfile, err := os.ReadFile(filepath.Join(moduleRoot, "deploy", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(dockerfile), "scripts/build-static.sh") {
		t.Error("deploy/Dockerfile does not build with scripts/build-static.sh, so this test checks another build")
	}
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			t.Errorf("the binary is dynamically linked (it has a %v program header)", p.Type)
		}
	}
	out, err := exec.Command(bin, "--version").Output()
	if err != nil || !strings.HasPrefix(string(out), "rhizome v0.0.0-static-test ") {
		t.Errorf("%s --version: %q, %v", bin, out, err)
	}
}
