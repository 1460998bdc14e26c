package validate_test

import (
	"strings"
	"testing"

	"github.com/rhizome-kv/rhizome/crdt/kube/validate"
)

// BenchmarkObject measures Object on stored objects of the kinds the merge
// path sees most; the figures are in doc.go. cpu-ns/op is the process's CPU
// time per call, which a busy machine inflates far less than ns/op.
func BenchmarkObject(b *testing.B) {
	for _, file := range []string{
		"pod-1.json", "deployment_apps-1.json", "service-1.json",
		"lease_coordination_k8s_io-1.json", "configmap-1.json",
	} {
		value := goldenOf(b, file)
		b.Run(strings.TrimSuffix(file, "-1.json"), func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(value)))
			start, ok := cpuTime()
			for b.Loop() {
				if err := validate.Object(value); err != nil {
					b.Fatal(err)
				}
			}
			if end, ok2 := cpuTime(); ok && ok2 {
				b.ReportMetric(float64(end-start)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}
