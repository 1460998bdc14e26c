package etcdshim

import (
	"errors"
	"io"
	"sync"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/rhizome-kv/rhizome/store"
	"github.com/rhizome-kv/rhizome/watch"
)

type watchServer struct {
	pb.UnimplementedWatchServer
	s *Server
}

// Watch serves one client watch stream: many watchers, created, cancelled and
// asked for progress over it.
func (w *watchServer) Watch(stream grpc.BidiStreamingServer[pb.WatchRequest, pb.WatchResponse]) error {
	var mu sync.Mutex
	fragment := map[int64]bool{} // watchers that accept fragmented responses
	send := func(r watch.Response) error {
		mu.Lock()
		frag := fragment[r.WatchID]
		if r.Canceled {
			delete(fragment, r.WatchID)
		}
		mu.Unlock()
		return w.send(stream, r, frag)
	}
	ws := w.s.hub.NewStream(stream.Context(), w.s.cfg.WatchProgressNotifyInterval, send)
	defer ws.Close()
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch r := req.RequestUnion.(type) {
		case *pb.WatchRequest_CreateRequest:
			c := r.CreateRequest
			if c == nil {
				continue
			}
			key := c.Key
			if len(key) == 0 {
				key = []byte{0} // etcd: an empty key means every key from "\x00"
			}
			wr := watch.Request{ID: c.WatchId, Key: key, End: c.RangeEnd, StartRev: c.StartRevision,
				PrevKV: c.PrevKv, ProgressNotify: c.ProgressNotify}
			for _, f := range c.Filters {
				switch f {
				case pb.WatchCreateRequest_NOPUT:
					wr.NoPut = true
				case pb.WatchCreateRequest_NODELETE:
					wr.NoDelete = true
				}
			}
			mu.Lock()
			fragment[c.WatchId] = c.Fragment
			mu.Unlock()
			if err := ws.Watch(wr); err != nil {
				if !errors.Is(err, watch.ErrWatchIDExists) {
					return err
				}
				// etcd refuses a duplicate id in a created-and-cancelled reply.
				if err := stream.Send(&pb.WatchResponse{Header: w.s.header(w.s.hub.Rev()), WatchId: -1, Created: true,
					Canceled: true, CancelReason: "mvcc: duplicate watch ID provided on the WatchStream"}); err != nil {
					return err
				}
			}
		case *pb.WatchRequest_CancelRequest:
			if r.CancelRequest != nil {
				ws.Cancel(r.CancelRequest.WatchId)
			}
		case *pb.WatchRequest_ProgressRequest:
			ws.RequestProgress()
		}
	}
}

// send writes one hub response, split into fragments when the watcher allows it
// and the events exceed the request size limit.
func (w *watchServer) send(stream grpc.BidiStreamingServer[pb.WatchRequest, pb.WatchResponse], r watch.Response, frag bool) error {
	resp := &pb.WatchResponse{
		Header:          w.s.header(r.Revision),
		WatchId:         r.WatchID,
		Created:         r.Created,
		Canceled:        r.Canceled,
		CancelReason:    r.CancelReason,
		CompactRevision: r.CompactRevision,
		Events:          make([]*mvccpb.Event, len(r.Events)),
	}
	for i, ev := range r.Events {
		resp.Events[i] = toPBEvent(ev)
	}
	if !frag || proto.Size(resp) < w.s.cfg.MaxRequestBytes {
		return stream.Send(resp)
	}
	limit := w.s.cfg.MaxRequestBytes
	events := resp.Events
	for len(events) > 0 {
		n, size := 0, 0
		for n < len(events) && (n == 0 || size+proto.Size(events[n]) < limit) {
			size += proto.Size(events[n])
			n++
		}
		part := &pb.WatchResponse{Header: resp.Header, WatchId: resp.WatchId, Events: events[:n]}
		events = events[n:]
		part.Fragment = len(events) > 0
		if err := stream.Send(part); err != nil {
			return err
		}
	}
	return nil
}

func toPBEvent(ev store.Event) *mvccpb.Event {
	e := &mvccpb.Event{Kv: toPB(ev.KV)}
	if ev.Type == store.EventDelete {
		e.Type = mvccpb.DELETE
	}
	if ev.PrevKV != nil {
		e.PrevKv = toPB(*ev.PrevKV)
	}
	return e
}
