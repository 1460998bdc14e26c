package store

import (
	"bytes"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestIncarnation: a data directory's incarnation is made at its first Open from
// the injected clock and randomness and kept across reopens; a wiped directory
// under the same name, or a backup restored under it, is a new one, newer than
// the old, and its own changes start their own sequence.
func TestIncarnation(t *testing.T) {
	dir := t.TempDir()
	open := func(dir string, random byte, at time.Time) *Store {
		t.Helper()
		cfg := DefaultConfig()
		cfg.Dir, cfg.Site, cfg.Logger = dir, "a", slog.New(slog.DiscardHandler)
		cfg.Rand = bytes.NewReader(bytes.Repeat([]byte{random}, 16))
		cfg.Now = func() time.Time { return at }
		s, err := Open(cfg)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	day := time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	s := open(dir, 0xff, day)
	first := s.Origin()
	if want := "a~69570a8000000000ffffffff"; first != want || OriginSite(first) != "a" {
		t.Fatalf("origin %q (site %q), want %q", first, OriginSite(first), want)
	}
	put(t, s, "k", `{"v":1}`)
	put(t, s, "k", `{"v":2}`)
	b, err := s.OpenBackup()
	if err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	_, err = b.WriteTo(&file)
	b.Close()
	s.Close()
	if err != nil {
		t.Fatal(err)
	}

	s = open(dir, 0x00, day.Add(time.Hour)) // reopened: the same incarnation
	if s.Origin() != first || s.VersionVector()[first] != 2 {
		t.Fatalf("reopened as %q holding %v, want %q holding 2 of its own", s.Origin(), s.VersionVector(), first)
	}
	s.Close()

	wiped := open(filepath.Join(t.TempDir(), "wiped"), 0x00, day.Add(time.Hour))
	defer wiped.Close()
	put(t, wiped, "k", `{"v":3}`)
	if o := wiped.Origin(); o == first || !NewerOrigin(o, first) || NewerOrigin(first, o) || wiped.VersionVector()[o] != 1 {
		t.Fatalf("wiped directory: origin %q (old %q), holds %v", o, first, wiped.VersionVector())
	}

	// Wiped within the second of the first Open, and with lower random bits:
	// still newer (the nanoseconds order it).
	soon := open(filepath.Join(t.TempDir(), "soon"), 0x00, day.Add(time.Millisecond))
	defer soon.Close()
	if o := soon.Origin(); !NewerOrigin(o, first) || NewerOrigin(first, o) {
		t.Fatalf("directory wiped within the second: origin %q not newer than the old %q", o, first)
	}

	restoredDir := filepath.Join(t.TempDir(), "restored")
	if _, err := Restore(bytes.NewReader(file.Bytes()), RestoreConfig{Dir: restoredDir, Site: "a", Logger: slog.New(slog.DiscardHandler)}); err != nil {
		t.Fatal(err)
	}
	restored := open(restoredDir, 0x11, day.Add(2*time.Hour))
	defer restored.Close()
	if o := restored.Origin(); !strings.HasPrefix(o, "a~") || !NewerOrigin(o, first) || restored.VersionVector()[first] != 2 || restored.VersionVector()[o] != 0 {
		t.Fatalf("restored directory: origin %q (old %q), holds %v", o, first, restored.VersionVector())
	}
	if NewerOrigin("b~ff", "a~00") || !NewerOrigin("a~00", "a") {
		t.Fatal("NewerOrigin compares origins of different sites, or a bare name is not the oldest")
	}
}
