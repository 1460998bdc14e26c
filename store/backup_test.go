package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
)

// TestBackupRestore backs up a store while writers keep committing and checks that
// the restored store is the original as of the backup's revision: same keys,
// values, revisions, history, compaction and leases.
func TestBackupRestore(t *testing.T) {
	ctx := context.Background()
	s := openTest(t, t.TempDir())
	defer s.Close()
	id, _, err := s.GrantLease(ctx, 0, 3600)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		put(t, s, fmt.Sprintf("k%02d", i), fmt.Sprintf(`{"i":%d}`, i))
	}
	if _, err := s.Update(ctx, func(tx *WriteTxn) error { return tx.Put([]byte("leased"), []byte("x"), id) }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Update(ctx, func(tx *WriteTxn) error { _, err := tx.DeleteRange([]byte("k00"), []byte("k05")); return err }); err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(ctx, s.Rev()-1); err != nil {
		t.Fatal(err)
	}
	put(t, s, "k10", `{"i":"after compaction"}`)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // writers are not held up by a backup, nor seen by it
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Update(ctx, func(tx *WriteTxn) error {
				return tx.Put(fmt.Appendf(nil, "during%d", i%7), fmt.Append(nil, i), 0)
			}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	b, err := s.OpenBackup()
	if err != nil {
		t.Fatal(err)
	}
	info := b.Info()
	put(t, s, "k11", "after the view") // a commit while the view is open
	var file bytes.Buffer
	n, err := b.WriteTo(&file)
	b.Close()
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(file.Len()) || n%512 != sha256.Size || n != info.Size {
		t.Fatalf("wrote %d bytes (buffer %d, estimated %d): want a multiple of 512 plus a SHA-256", n, file.Len(), info.Size)
	}
	want, err := s.Range([]byte{0}, RangeOptions{End: []byte{0}, Rev: info.Revision})
	if err != nil {
		t.Fatal(err)
	}
	wantHash, _, _, err := s.HashKV(info.Revision)
	if err != nil {
		t.Fatal(err)
	}

	dir := filepath.Join(t.TempDir(), "restored")
	got, err := Restore(bytes.NewReader(file.Bytes()), RestoreConfig{Dir: dir, Site: "test2", Logger: slog.Default()})
	if err != nil {
		t.Fatal(err)
	}
	if got.Site != "test" || got.Revision != info.Revision || got.CompactRevision != s.CompactRev() {
		t.Fatalf("restored info %+v, backup info %+v", got, info)
	}
	cfg := DefaultConfig()
	cfg.Dir, cfg.Site = dir, "test"
	if _, err := Open(cfg); !errors.Is(err, ErrOtherSite) {
		t.Fatalf("opening the restored store as the old site: %v, want ErrOtherSite", err)
	}
	cfg.Site = "test2"
	r, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Rev() != info.Revision || r.CompactRev() != s.CompactRev() {
		t.Fatalf("restored at revision %d compacted %d, want %d and %d", r.Rev(), r.CompactRev(), info.Revision, s.CompactRev())
	}
	res, err := r.Range([]byte{0}, RangeOptions{End: []byte{0}})
	if err != nil {
		t.Fatal(err)
	}
	want.Rev = res.Rev
	if !reflect.DeepEqual(res, want) {
		t.Fatalf("restored keys:\n%+v\nwant:\n%+v", res, want)
	}
	if h, _, _, err := r.HashKV(0); err != nil || h != wantHash {
		t.Fatalf("restored history hash %d (%v), want %d", h, err, wantHash)
	}
	if st, err := r.LeaseTimeToLive(id, true); err != nil || len(st.Keys) != 1 {
		t.Fatalf("restored lease: %+v %v", st, err)
	}
	if rev := put(t, r, "new", "1"); rev != info.Revision+1 {
		t.Fatalf("first write after restore at revision %d, want %d", rev, info.Revision+1)
	}
}

// TestRestoreRefusesDamage checks that a damaged or truncated file restores
// nothing.
func TestRestoreRefusesDamage(t *testing.T) {
	s := openTest(t, t.TempDir())
	defer s.Close()
	for i := range 50 {
		put(t, s, fmt.Sprintf("k%02d", i), fmt.Sprint(i))
	}
	b, err := s.OpenBackup()
	if err != nil {
		t.Fatal(err)
	}
	var file bytes.Buffer
	_, err = b.WriteTo(&file)
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	flipped := bytes.Clone(file.Bytes())
	flipped[len(flipped)/2] ^= 1
	for name, data := range map[string][]byte{
		"flipped byte": flipped,
		"truncated":    file.Bytes()[:file.Len()-1],
		"extra byte":   append(bytes.Clone(file.Bytes()), 0),
		"not a backup": bytes.Repeat([]byte{7}, 512+sha256.Size),
	} {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "restored")
			_, err := Restore(bytes.NewReader(data), RestoreConfig{Dir: dir, Site: "x", Logger: slog.Default()})
			if !errors.Is(err, ErrBadBackup) {
				t.Fatalf("restore: %v, want ErrBadBackup", err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Fatalf("restore of a bad file left %s behind (%v)", dir, err)
			}
			if _, err := os.Stat(dir + ".restoring"); !os.IsNotExist(err) {
				t.Fatalf("restore of a bad file left its temporary directory (%v)", err)
			}
		})
	}
}
