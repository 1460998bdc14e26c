package alloc

import (
	"context"
	"fmt"
	"hash/fnv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/rhizome-kv/rhizome/crdt/kube"
)

// eventWrites are the Events reporting a pass's repairs, attached to one lease
// so that they expire like kube-apiserver's own.
type eventWrites struct {
	lease  int64
	writes []Write
}

// events builds a Warning Event on each repaired Service. The lease is granted
// here, before the write that uses it; a plan found stale leaves it to expire
// empty.
func (r *Repairer) events(ctx context.Context, reps []Repair) (eventWrites, error) {
	if len(reps) == 0 {
		return eventWrites{}, nil
	}
	id, _, err := r.st.GrantLease(ctx, 0, int64(r.cfg.EventTTL.Seconds()))
	if err != nil {
		return eventWrites{}, fmt.Errorf("alloc: lease for events: %w", err)
	}
	ew := eventWrites{lease: id}
	now := metav1.NewTime(r.cfg.Now().UTC().Truncate(eventClock))
	for _, rep := range reps {
		ns, name, _ := strings.Cut(rep.Service, "/")
		e := event(rep, ns, name, now)
		v, err := kube.Encode(e)
		if err != nil {
			return eventWrites{}, err
		}
		ew.writes = append(ew.writes, Write{Key: r.cfg.Prefix + "events/" + ns + "/" + e.Name, Value: v})
	}
	return ew, nil
}

// eventClock is the resolution of an Event's times: sites that apply the same
// repair within one such interval (as they do when they meet and repair at
// once) write byte-identical Events.
const eventClock = time.Minute

// event is the Event reporting one repair. Everything in it but its times is
// derived from the repair, so that every site that applies the repair writes
// the same key, and within one eventClock the same bytes: a user sees one
// Event per repair, and the sites' concurrent creates of it are no conflict.
func event(rep Repair, ns, name string, now metav1.Time) *corev1.Event {
	h := fnv.New64a()
	h.Write([]byte(flagID(rep) + "/" + rep.New))
	reason := string(rep.Kind) + "Reallocated"
	msg := fmt.Sprintf("%s %s was also held by Service %s, which keeps it (concurrent allocation at two sites); given %s instead",
		rep.Kind, rep.Held, rep.Winner, rep.New)
	if rep.Flagged() {
		reason = string(rep.Kind) + "AlreadyAllocated"
		msg = fmt.Sprintf("%s %s is also held by Service %s, which keeps it (concurrent allocation at two sites); not re-allocated: %s; please recreate the Service",
			rep.Kind, rep.Held, rep.Winner, rep.Reason)
	}
	evName := fmt.Sprintf("%s.rhizome-%x", name, h.Sum64())
	return &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name: evName, Namespace: ns, CreationTimestamp: now,
			UID: types.UID(derivedUID("event", ns, evName)),
		},
		InvolvedObject: corev1.ObjectReference{
			Kind: "Service", APIVersion: "v1", Namespace: ns, Name: name, UID: types.UID(rep.UID),
		},
		Reason: reason, Message: msg, Type: corev1.EventTypeWarning,
		Source:         corev1.EventSource{Component: "rhizome"},
		FirstTimestamp: now, LastTimestamp: now, Count: 1,
		ReportingController: "rhizome.io/alloc", ReportingInstance: "rhizome",
	}
}
