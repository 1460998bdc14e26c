package main

import (
	"os"
	"testing"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// rhizomeBuild is the real binary the command-line tests run, built on first use.
var rhizomeBuild testbin.Rhizome

func TestMain(m *testing.M) {
	code := m.Run()
	rhizomeBuild.Remove()
	os.Exit(code)
}
