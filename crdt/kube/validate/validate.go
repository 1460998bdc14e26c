package validate

import (
	"encoding/json"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/api/validate/content"
	genericvalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/kubernetes/pkg/api/legacyscheme"

	// Each install package registers its group's versions, defaulting and
	// conversions in legacyscheme, as kube-apiserver's own imports do.
	_ "k8s.io/kubernetes/pkg/apis/apps/install"
	_ "k8s.io/kubernetes/pkg/apis/autoscaling/install"
	_ "k8s.io/kubernetes/pkg/apis/batch/install"
	_ "k8s.io/kubernetes/pkg/apis/coordination/install"
	_ "k8s.io/kubernetes/pkg/apis/core/install"
	_ "k8s.io/kubernetes/pkg/apis/discovery/install"
	_ "k8s.io/kubernetes/pkg/apis/networking/install"
	_ "k8s.io/kubernetes/pkg/apis/policy/install"
	_ "k8s.io/kubernetes/pkg/apis/rbac/install"
	_ "k8s.io/kubernetes/pkg/apis/scheduling/install"
)

// head is the part of a stored value that says whether it is an API object
// and of which type.
type head struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name string `json:"name"`
	} `json:"metadata"`
}

// Object validates value, the JSON kube-apiserver stores for an object, the
// way kube-apiserver validates that kind (see the package comment for what
// exactly runs). It returns nil for a valid object and also, by design, for
// a value it cannot judge: one that is not a JSON object naming apiVersion,
// kind and metadata.name (kube-apiserver's own records under
// /registry/masterleases/ and /registry/peerserverleases/ are nameless
// Endpoints that no API request ever validates), or a kind it does not
// cover (custom resources, and built-in kinds outside its list). For a covered kind it returns an error when the value
// does not decode into that kind, or when validation fails; then the error
// wraps a *k8s.io/apimachinery/pkg/api/errors.StatusError with reason
// Invalid whose message is kube-apiserver's own, e.g.
//
//	validate: Deployment.apps "web" is invalid: spec.strategy.rollingUpdate.maxUnavailable: Invalid value: 0: may not be 0 when `maxSurge` is 0
//
// and apierrors.IsInvalid(err) holds. Object does not modify value, keeps no
// state between calls and is safe for concurrent use.
func Object(value []byte) error {
	var h head
	if err := json.Unmarshal(value, &h); err != nil || h.APIVersion == "" || h.Kind == "" || h.Metadata.Name == "" {
		return nil // not an API object: opaque to this package
	}
	gv, err := schema.ParseGroupVersion(h.APIVersion)
	if err != nil {
		return nil
	}
	gvk := gv.WithKind(h.Kind)
	check := ruleFor(gvk.GroupKind())
	if check == nil || !legacyscheme.Scheme.Recognizes(gvk) {
		return nil
	}
	obj, m, err := decode(value, gvk)
	if err != nil {
		return err
	}
	errs := check(obj)
	if len(errs) == 0 {
		errs = commonMeta(m)
	}
	if len(errs) > 0 {
		return fmt.Errorf("validate: %w", apierrors.NewInvalid(gvk.GroupKind(), m.GetName(), errs))
	}
	return nil
}

// commonMeta is the metadata validation kube-apiserver runs for every kind
// after the kind's own (k8s.io/apiserver/pkg/registry/rest.BeforeCreate),
// which some kinds (PodDisruptionBudget) rely on entirely. Whether the kind
// is namespaced is taken from the object: a merge cannot move an object
// between namespaces, its key names the namespace.
func commonMeta(m metav1.Object) field.ErrorList {
	return genericvalidation.ValidateObjectMetaAccessor(m, m.GetNamespace() != "",
		validatePathSegment, field.NewPath("metadata"))
}

// validatePathSegment is the name rule BeforeCreate gives every kind: a
// name, or a generateName prefix, that can be one segment of a URL path.
func validatePathSegment(name string, prefix bool) []string {
	if prefix {
		return content.IsPathSegmentPrefix(name)
	}
	return content.IsPathSegmentName(name)
}

// decode turns a stored value into the internal type of its kind as
// kube-apiserver does when it reads an object from storage: it applies the
// defaults and sets metadata.resourceVersion, which a stored value lacks
// (kube-apiserver sets it from the key's mod_revision; update validation
// requires one, and its value matters to no rule).
func decode(value []byte, gvk schema.GroupVersionKind) (runtime.Object, metav1.Object, error) {
	obj, _, err := legacyscheme.Codecs.UniversalDecoder().Decode(value, nil, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("validate: %s does not decode: %w", gvk, err)
	}
	m, err := meta.Accessor(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("validate: %s has no metadata: %w", gvk, err)
	}
	if m.GetResourceVersion() == "" {
		m.SetResourceVersion("1")
	}
	return obj, m, nil
}
