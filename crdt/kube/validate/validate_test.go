package validate_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rhizome-kv/rhizome/crdt/kube/validate"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// coveredKinds are the kinds Object validates, as Kind.group.
var coveredKinds = []string{
	"Pod", "PodTemplate", "ReplicationController", "Service", "Endpoints",
	"ConfigMap", "Secret", "ServiceAccount", "Namespace", "Node",
	"PersistentVolume", "PersistentVolumeClaim", "ResourceQuota", "LimitRange",
	"Deployment.apps", "ReplicaSet.apps", "StatefulSet.apps", "DaemonSet.apps",
	"ControllerRevision.apps", "Job.batch", "CronJob.batch",
	"HorizontalPodAutoscaler.autoscaling", "PodDisruptionBudget.policy",
	"Lease.coordination.k8s.io", "EndpointSlice.discovery.k8s.io",
	"Ingress.networking.k8s.io", "IngressClass.networking.k8s.io",
	"NetworkPolicy.networking.k8s.io", "IPAddress.networking.k8s.io",
	"ServiceCIDR.networking.k8s.io",
	"Role.rbac.authorization.k8s.io", "ClusterRole.rbac.authorization.k8s.io",
	"RoleBinding.rbac.authorization.k8s.io", "ClusterRoleBinding.rbac.authorization.k8s.io",
	"PriorityClass.scheduling.k8s.io",
}

// kindOf is tm's kind as Kind.group.
func kindOf(tm metav1.TypeMeta) string {
	return schema.FromAPIVersionAndKind(tm.APIVersion, tm.Kind).GroupKind().String()
}

// golden is one value kube-apiserver stored, from testdata/stored/.
type golden struct {
	file  string
	kind  string
	value []byte
}

func goldens(t testing.TB) []golden {
	files, err := filepath.Glob(filepath.Join("testdata", "stored", "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no goldens in testdata/stored (%v): run TestStoredByKubeAPIServer with -update", err)
	}
	var out []golden
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var tm metav1.TypeMeta
		if err := json.Unmarshal(b, &tm); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, golden{file: filepath.Base(f), kind: kindOf(tm), value: b})
	}
	return out
}

// goldenOf is the first golden of kind whose file is prefix*.
func goldenOf(t testing.TB, file string) []byte {
	b, err := os.ReadFile(filepath.Join("testdata", "stored", file))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// edit returns value with set applied to it as an unstructured object.
func edit(t *testing.T, value []byte, set func(u map[string]any) error) []byte {
	t.Helper()
	var u map[string]any
	if err := json.Unmarshal(value, &u); err != nil {
		t.Fatal(err)
	}
	if err := set(u); err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(u)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// setField sets one nested field of u.
func setField(value any, fields ...string) func(map[string]any) error {
	return func(u map[string]any) error {
		return unstructured.SetNestedField(u, value, fields...)
	}
}

func TestStoredObjectsPass(t *testing.T) {
	seen := map[string]bool{}
	for _, g := range goldens(t) {
		seen[g.kind] = true
		t.Run(g.file, func(t *testing.T) {
			if err := validate.Object(g.value); err != nil {
				t.Fatalf("stored by kube-apiserver, rejected: %v", err)
			}
		})
	}
	for _, kind := range coveredKinds {
		if !seen[kind] {
			t.Errorf("no golden of %s in testdata/stored", kind)
		}
	}
}

// TestEveryKindIsValidated gives a golden of every kind a label key the
// API forbids on every object: each must be rejected with kube-apiserver's
// error, which shows the kind is decoded and validated rather than passed
// as unknown.
func TestEveryKindIsValidated(t *testing.T) {
	for _, g := range goldens(t) {
		t.Run(g.file, func(t *testing.T) {
			bad := edit(t, g.value, setField("x", "metadata", "labels", "not a key!"))
			err := validate.Object(bad)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			if want := `is invalid: metadata.labels: Invalid value: "not a key!": name part must consist of`; !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not contain %q", err, want)
			}
		})
	}
}

// TestInvalidMerges are objects a field-by-field merge of two valid
// objects can produce and kube-apiserver rejects.
func TestInvalidMerges(t *testing.T) {
	for _, tc := range []struct {
		name, golden string
		set          []func(map[string]any) error
		want         []string
	}{{
		name:   "deployment maxSurge and maxUnavailable both zero",
		golden: "deployment_apps-1.json",
		set: []func(map[string]any) error{
			setField(int64(0), "spec", "strategy", "rollingUpdate", "maxSurge"),
			setField(int64(0), "spec", "strategy", "rollingUpdate", "maxUnavailable"),
		},
		want: []string{`Deployment.apps "web" is invalid: spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when ` + "`maxSurge`" + ` is 0`},
	}, {
		name:   "deployment status blended: readyReplicas from one side, replicas from the other",
		golden: "deployment_apps-1.json",
		set: []func(map[string]any) error{
			setField(int64(2), "status", "replicas"),
			setField(int64(3), "status", "readyReplicas"),
			setField(int64(2), "status", "availableReplicas"),
		},
		want: []string{`status.readyReplicas: Invalid value: 3: cannot be greater than status.replicas`},
	}, {
		name:   "statefulset status readyReplicas above replicas",
		golden: "statefulset_apps-1.json",
		set:    []func(map[string]any) error{setField(int64(1), "status", "replicas"), setField(int64(2), "status", "readyReplicas")},
		want:   []string{`status.readyReplicas: Invalid value: 2: cannot be greater than status.replicas`},
	}, {
		name:   "service clusterIP from one side, clusterIPs from the other",
		golden: "service-1.json",
		set:    []func(map[string]any) error{setField([]any{"10.0.0.99"}, "spec", "clusterIPs")},
		want:   []string{`spec.clusterIPs: Invalid value: `, "first value must match `clusterIP`"},
	}, {
		name:   "hpa minReplicas above maxReplicas",
		golden: "horizontalpodautoscaler_autoscaling-1.json",
		set:    []func(map[string]any) error{setField(int64(8), "spec", "minReplicas")},
		want:   []string{`spec.maxReplicas: Invalid value: 6: must be greater than or equal to ` + "`minReplicas`"},
	}, {
		name:   "pdb minAvailable and maxUnavailable both set",
		golden: "poddisruptionbudget_policy-1.json",
		set:    []func(map[string]any) error{setField(int64(1), "spec", "maxUnavailable")},
		want:   []string{`spec: Invalid value: `, `minAvailable and maxUnavailable cannot be both set`},
	}, {
		name:   "lease duration zero",
		golden: "lease_coordination_k8s_io-1.json",
		set:    []func(map[string]any) error{setField(int64(0), "spec", "leaseDurationSeconds")},
		want:   []string{`spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0`},
	}, {
		name:   "pod activeDeadlineSeconds zero",
		golden: "pod-1.json",
		set:    []func(map[string]any) error{setField(int64(0), "spec", "activeDeadlineSeconds")},
		want:   []string{`spec.activeDeadlineSeconds: Invalid value: 0: must be between 1 and 2147483647, inclusive`},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			base := goldenOf(t, tc.golden)
			if err := validate.Object(base); err != nil {
				t.Fatalf("golden %s rejected: %v", tc.golden, err)
			}
			merged := edit(t, base, func(u map[string]any) error {
				for _, set := range tc.set {
					if err := set(u); err != nil {
						return err
					}
				}
				return nil
			})
			err := validate.Object(merged)
			if !apierrors.IsInvalid(err) {
				t.Fatalf("want an Invalid error, got %v", err)
			}
			t.Log(err)
			for _, want := range tc.want {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
			if !strings.HasPrefix(err.Error(), "validate: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
		})
	}
}

// TestNotJudged are values Object accepts because it cannot judge them.
func TestNotJudged(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"empty", ""},
		{"not json", "k8s\x00\x0a\x0b\x0a\x02v1\x12\x03Pod"},
		{"json null", "null"},
		{"json array", `[{"apiVersion":"v1","kind":"Pod"}]`},
		{"json string", `"hello"`},
		{"truncated", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"`},
		{"no kind", `{"apiVersion":"v1","metadata":{"name":"x"}}`},
		{"no apiVersion", `{"kind":"Pod","metadata":{"name":"x"}}`},
		{"no name: kube-apiserver's /registry/masterleases/ record", `{"kind":"Endpoints","apiVersion":"v1","metadata":{"creationTimestamp":null},"subsets":[{"addresses":[{"ip":"127.0.0.1"}],"ports":[{"port":6443,"protocol":"TCP"}]}]}`},
		{"bad apiVersion", `{"apiVersion":"a/b/c","kind":"Pod","metadata":{"name":"x"}}`},
		{"custom resource", `{"apiVersion":"example.com/v1","kind":"Widget","metadata":{"name":"Not_A_Name!"},"spec":{"replicas":-1}}`},
		{"built-in kind not covered", `{"apiVersion":"storage.k8s.io/v1","kind":"StorageClass","metadata":{"name":"Not_A_Name!"},"provisioner":""}`},
		{"version not served", `{"apiVersion":"apps/v9","kind":"Deployment","metadata":{"name":"Not_A_Name!"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := validate.Object([]byte(tc.value)); err != nil {
				t.Fatalf("want nil, got %v", err)
			}
		})
	}
}

// TestUndecodable are values of a covered kind that kube-apiserver could
// not decode: rejected, not accepted and not a panic.
func TestUndecodable(t *testing.T) {
	for _, tc := range []struct{ name, value string }{
		{"wrong field type", `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web"},"spec":{"replicas":"three"}}`},
		{"status not an object", `{"apiVersion":"v1","kind":"Pod","metadata":{"name":"p","namespace":"d"},"status":[1]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := validate.Object([]byte(tc.value))
			if err == nil || !strings.HasPrefix(err.Error(), "validate: ") {
				t.Fatalf("want a validate: error, got %v", err)
			}
			if apierrors.IsInvalid(err) {
				t.Fatalf("a decode error is not a validation result: %v", err)
			}
		})
	}
}

// TestMinimalObjectDefaults checks that Object applies kube-apiserver's
// defaulting before validating, as kube-apiserver does on every read: a
// Deployment stored without the fields defaulting fills in is valid.
func TestMinimalObjectDefaults(t *testing.T) {
	value := `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"shop"},
	"spec":{"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},
	"spec":{"containers":[{"name":"web","image":"nginx"}]}}}}`
	if err := validate.Object([]byte(value)); err != nil {
		t.Fatal(err)
	}
	var status *apierrors.StatusError
	bad := strings.Replace(value, `"app":"web"}},"template"`, `"app":"db"}},"template"`, 1)
	if err := validate.Object([]byte(bad)); !errors.As(err, &status) ||
		!strings.Contains(err.Error(), "spec.template.metadata.labels: Invalid value") {
		t.Fatalf("selector not matching the template: got %v", err)
	}
}
