package main

import (
	"bytes"
	"os"
	"testing"

	"github.com/rhizome-kv/rhizome/site"
)

// TestFlagsDocCurrent fails when docs/flags.md is not what the code generates.
func TestFlagsDocCurrent(t *testing.T) {
	cfg := site.DefaultConfig()
	var want bytes.Buffer
	writeFlagsMarkdown(&want, newServeFlags(&cfg).fs, "help-md")
	got, err := os.ReadFile("../../docs/flags.md")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want.Bytes()) {
		t.Fatal("docs/flags.md is stale: run `make docs` (go run ./cmd/rhizome serve --help-md > docs/flags.md)")
	}
}
