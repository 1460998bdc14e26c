package store

import (
	"context"
	"io"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetrics checks the store's etcd-named metrics move with what it does.
func TestMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := DefaultConfig()
	// Replicated: a store alone writes no documents to count.
	cfg.Dir, cfg.Site, cfg.Registerer, cfg.Replicated = t.TempDir(), "test", reg, true
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range 3 {
		put(t, s, "k", "v")
	}
	if _, err := s.Update(context.Background(), func(tx *WriteTxn) error { _, err := tx.DeleteRange([]byte("k"), nil); return err }); err != nil {
		t.Fatal(err)
	}
	get(t, s, "k", 0)
	if err := s.Compact(context.Background(), s.Rev()); err != nil {
		t.Fatal(err)
	}
	if err := s.Defragment(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, err := s.OpenBackup()
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.WriteTo(io.Discard)
	b.Close()
	if err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		m := f.GetMetric()[0]
		switch {
		case m.GetCounter() != nil:
			got[f.GetName()] = m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			got[f.GetName()] = m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			got[f.GetName()] = float64(m.GetHistogram().GetSampleCount())
		}
	}
	for name, want := range map[string]float64{
		"etcd_mvcc_put_total":                          3,
		"etcd_mvcc_delete_total":                       1,
		"etcd_mvcc_range_total":                        1,
		"etcd_debugging_mvcc_current_revision":         5,
		"etcd_debugging_mvcc_compact_revision":         5,
		"etcd_debugging_mvcc_db_compaction_keys_total": 4,
		"etcd_server_quota_backend_bytes":              DefaultQuotaBytes,
		"etcd_disk_backend_commit_duration_seconds":    6, // 4 writes, the compaction and defragmentation's marker
	} {
		if got[name] != want {
			t.Errorf("%s = %v, want %v", name, got[name], want)
		}
	}
	if n := got["rhizome_store_document_bytes"]; n < 2 { // the create and the delete write the document
		t.Errorf("rhizome_store_document_bytes counts %v document writes, want at least 2", n)
	}
	if got["etcd_mvcc_db_total_size_in_bytes"] < 1 {
		t.Errorf("etcd_mvcc_db_total_size_in_bytes = %v", got["etcd_mvcc_db_total_size_in_bytes"])
	}
}
