package etcdshim

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"math"
	"sort"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/rhizome-kv/rhizome/store"
)

type kvServer struct {
	pb.UnimplementedKVServer
	s *Server
}

// txnView is what requests read and write through: a store write, or a
// read-only view (readOnly) for requests that write nothing.
type txnView = store.TxnWrite

// readOnly is a read view that refuses writes, for requests that make none.
type readOnly struct{ store.TxnRead }

func (readOnly) Changed() bool { return false }
func (readOnly) Reserve(int64) error {
	return errors.New("etcdshim: write in a read-only request")
}
func (readOnly) Put([]byte, []byte, int64) error {
	return errors.New("etcdshim: write in a read-only request")
}
func (readOnly) DeleteRange([]byte, []byte) ([]store.KeyValue, error) {
	return nil, errors.New("etcdshim: write in a read-only request")
}

func (k *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := checkRangeRequest(r); err != nil {
		return nil, err
	}
	resp, err := executeRange(k.s.be, r)
	if err != nil {
		return nil, toGRPC(err)
	}
	resp.Header = k.s.header(resp.Header.Revision)
	return resp, nil
}

// rangeStreamChunk is how many keys one RangeStream message carries at most.
const rangeStreamChunk = 1000

func (k *kvServer) RangeStream(r *pb.RangeRequest, stream grpc.ServerStreamingServer[pb.RangeStreamResponse]) error {
	if err := checkRangeRequest(r); err != nil {
		return err
	}
	if !isDefaultOrdering(r.SortTarget, r.SortOrder) {
		return status.Errorf(codes.Unimplemented, "RangeStream does not support custom sort orders")
	}
	if hasRevisionFilters(r) {
		return status.Errorf(codes.Unimplemented, "RangeStream does not support revision filters")
	}
	resp, err := executeRange(k.s.be, r)
	if err != nil {
		return toGRPC(err)
	}
	kvs := resp.Kvs
	for len(kvs) > rangeStreamChunk {
		if err := stream.Send(&pb.RangeStreamResponse{RangeResponse: &pb.RangeResponse{Kvs: kvs[:rangeStreamChunk]}}); err != nil {
			return err
		}
		kvs = kvs[rangeStreamChunk:]
	}
	resp.Kvs = kvs
	resp.Header = k.s.header(resp.Header.Revision)
	return stream.Send(&pb.RangeStreamResponse{RangeResponse: resp})
}

func (k *kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := checkPutRequest(r); err != nil {
		return nil, err
	}
	if err := k.s.checkSize(r); err != nil {
		return nil, err
	}
	var resp *pb.PutResponse
	_, err := k.s.be.Write(ctx, func(tx store.TxnWrite) error {
		if err := tx.Reserve(int64(costPut(r))); err != nil {
			return err
		}
		if err := checkPut(tx, r); err != nil {
			return err
		}
		var err error
		resp, err = put(tx, r)
		return err
	})
	if err != nil {
		return nil, toGRPC(err)
	}
	resp.Header = k.s.header(resp.Header.Revision)
	return resp, nil
}

func (k *kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if err := checkDeleteRequest(r); err != nil {
		return nil, err
	}
	if err := k.s.checkSize(r); err != nil {
		return nil, err
	}
	var resp *pb.DeleteRangeResponse
	_, err := k.s.be.Write(ctx, func(tx store.TxnWrite) error {
		var err error
		resp, err = deleteRange(tx, r)
		return err
	})
	if err != nil {
		return nil, toGRPC(err)
	}
	resp.Header = k.s.header(resp.Header.Revision)
	return resp, nil
}

func (k *kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := checkTxnRequest(r, k.s.cfg.MaxTxnOps); err != nil {
		return nil, err
	}
	if _, _, err := checkIntervals(r.Success); err != nil {
		return nil, err
	}
	if _, _, err := checkIntervals(r.Failure); err != nil {
		return nil, err
	}
	if ignoresDeletedKey(r, nil) {
		return nil, rpctypes.ErrGRPCKeyNotFound
	}
	var resp *pb.TxnResponse
	run := func(v txnView) error {
		path := compareToPath(v, r)
		if _, err := checkTxn(v, r, path); err != nil {
			return err
		}
		var err error
		resp, err = txn(v, r, path)
		return err
	}
	var err error
	view := readOnly{k.s.be.Read()}
	if isTxnReadonly(r) || branchReadsOnly(r, compareToPath(view, r)) {
		// As etcd does, compares are read from a view first: a request whose
		// branch writes nothing (an update with a stale mod_revision getting
		// the current value) is answered from that view, at the newest
		// durable revision, without waiting for the committer.
		err = run(view)
	} else {
		if err := k.s.checkSize(r); err != nil {
			return nil, err
		}
		_, err = k.s.be.Write(ctx, func(tx store.TxnWrite) error {
			if err := tx.Reserve(int64(costTxn(r))); err != nil {
				return err
			}
			return run(tx)
		})
	}
	if err != nil {
		return nil, toGRPC(err)
	}
	// Like etcd, only the outer header is filled; nested responses carry their
	// revision alone.
	resp.Header = k.s.header(resp.Header.Revision)
	return resp, nil
}

func (k *kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	if err := k.s.be.Compact(ctx, r.Revision); err != nil {
		return nil, toGRPC(err)
	}
	return &pb.CompactionResponse{Header: k.s.header(k.s.be.Rev())}, nil
}

// --- validation, as etcd's api/v3rpc/key.go ---

func checkRangeRequest(r *pb.RangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	if _, ok := pb.RangeRequest_SortOrder_name[int32(r.SortOrder)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	if _, ok := pb.RangeRequest_SortTarget_name[int32(r.SortTarget)]; !ok {
		return rpctypes.ErrGRPCInvalidSortOption
	}
	return nil
}

func checkPutRequest(r *pb.PutRequest) error {
	switch {
	case len(r.Key) == 0:
		return rpctypes.ErrGRPCEmptyKey
	case r.IgnoreValue && len(r.Value) != 0:
		return rpctypes.ErrGRPCValueProvided
	case r.IgnoreLease && r.Lease != 0:
		return rpctypes.ErrGRPCLeaseProvided
	}
	return nil
}

func checkDeleteRequest(r *pb.DeleteRangeRequest) error {
	if len(r.Key) == 0 {
		return rpctypes.ErrGRPCEmptyKey
	}
	return nil
}

func checkTxnRequest(r *pb.TxnRequest, maxTxnOps int) error {
	opc := max(len(r.Compare), len(r.Success), len(r.Failure))
	if opc > maxTxnOps {
		return rpctypes.ErrGRPCTooManyOps
	}
	for _, c := range r.Compare {
		if len(c.Key) == 0 {
			return rpctypes.ErrGRPCEmptyKey
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, u := range ops {
			if err := checkRequestOp(u, maxTxnOps-opc); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkRequestOp(u *pb.RequestOp, maxTxnOps int) error {
	switch uv := u.Request.(type) {
	case *pb.RequestOp_RequestRange:
		return checkRangeRequest(uv.RequestRange)
	case *pb.RequestOp_RequestPut:
		return checkPutRequest(uv.RequestPut)
	case *pb.RequestOp_RequestDeleteRange:
		return checkDeleteRequest(uv.RequestDeleteRange)
	case *pb.RequestOp_RequestTxn:
		return checkTxnRequest(uv.RequestTxn, maxTxnOps)
	default:
		return rpctypes.ErrGRPCKeyNotFound
	}
}

// interval is a deleted key range; end "" is unbounded. A point k is [k, k+"\x00").
type interval struct{ begin, end string }

func (iv interval) containsPoint(k string) bool {
	return iv.begin <= k && (iv.end == "" || k < iv.end)
}

// checkIntervals enforces etcd's rule that a Txn may not put a key twice, or put a
// key that it also deletes, across the branches that could run together.
func checkIntervals(reqs []*pb.RequestOp) (map[string]struct{}, []interval, error) {
	var dels []interval
	for _, req := range reqs {
		tv, ok := req.Request.(*pb.RequestOp_RequestDeleteRange)
		if !ok || tv.RequestDeleteRange == nil {
			continue
		}
		d := tv.RequestDeleteRange
		if len(d.RangeEnd) != 0 {
			dels = append(dels, interval{string(d.Key), string(d.RangeEnd)})
		} else {
			dels = append(dels, interval{string(d.Key), string(d.Key) + "\x00"})
		}
	}
	deleted := func(k string) bool {
		for _, iv := range dels {
			if iv.containsPoint(k) {
				return true
			}
		}
		return false
	}
	puts := make(map[string]struct{})
	for _, req := range reqs {
		tv, ok := req.Request.(*pb.RequestOp_RequestTxn)
		if !ok {
			continue
		}
		putsThen, delsThen, err := checkIntervals(tv.RequestTxn.Success)
		if err != nil {
			return nil, dels, err
		}
		putsElse, delsElse, err := checkIntervals(tv.RequestTxn.Failure)
		if err != nil {
			return nil, dels, err
		}
		for k := range putsThen {
			if _, ok := puts[k]; ok || deleted(k) {
				return nil, dels, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		for k := range putsElse {
			if _, ok := puts[k]; ok {
				if _, isSafe := putsThen[k]; !isSafe {
					return nil, dels, rpctypes.ErrGRPCDuplicateKey
				}
			}
			if deleted(k) {
				return nil, dels, rpctypes.ErrGRPCDuplicateKey
			}
			puts[k] = struct{}{}
		}
		dels = append(dels, delsThen...)
		dels = append(dels, delsElse...)
	}
	for _, req := range reqs {
		tv, ok := req.Request.(*pb.RequestOp_RequestPut)
		if !ok || tv.RequestPut == nil {
			continue
		}
		k := string(tv.RequestPut.Key)
		if _, ok := puts[k]; ok || deleted(k) {
			return nil, dels, rpctypes.ErrGRPCDuplicateKey
		}
		puts[k] = struct{}{}
	}
	return puts, dels, nil
}

// ignoresDeletedKey reports whether a Txn puts with ignore_value or ignore_lease a
// key that one of its deletes to the end of the key space ("\x00" range end) may
// remove first. checkIntervals does not see those deletes (etcd treats "\x00" as
// an ordinary bound there), and etcd crashes on such a Txn; Rhizome refuses it as
// it refuses any ignore_value put of a missing key.
func ignoresDeletedKey(r *pb.TxnRequest, from [][]byte) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if d := op.GetRequestDeleteRange(); d != nil && len(d.RangeEnd) == 1 && d.RangeEnd[0] == 0 {
				from = append(from, d.Key)
			}
		}
	}
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, op := range ops {
			if p := op.GetRequestPut(); p != nil && (p.IgnoreValue || p.IgnoreLease) {
				for _, k := range from {
					if bytes.Compare(p.Key, k) >= 0 {
						return true
					}
				}
			}
			if t := op.GetRequestTxn(); t != nil && ignoresDeletedKey(t, from) {
				return true
			}
		}
	}
	return false
}

// --- execution, as etcd's etcdserver/txn ---

func toPB(kv store.KeyValue) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: kv.Key, Value: kv.Value, CreateRevision: kv.CreateRevision,
		ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}
}

func executeRange(v interface {
	Range([]byte, store.RangeOptions) (store.RangeResult, error)
}, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	// etcd answers keys-only ranges from its index unless it must sort by
	// value, and its index knows no leases.
	fromIndex := r.KeysOnly && r.SortTarget != pb.RangeRequest_VALUE
	rr, err := v.Range(r.Key, store.RangeOptions{End: r.RangeEnd, Rev: r.Revision, Limit: rangeLimit(r), CountOnly: r.CountOnly, KeysOnly: fromIndex})
	if err != nil {
		return nil, err
	}
	kvs := make([]*mvccpb.KeyValue, len(rr.KVs))
	for i, kv := range rr.KVs {
		kvs[i] = toPB(kv)
	}
	kvs = filterRange(kvs, r)
	sortRange(kvs, r)
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: rr.Rev}, Count: int64(rr.Count)}
	if r.Limit > 0 && len(kvs) > int(r.Limit) {
		kvs = kvs[:r.Limit]
		resp.More = true
	}
	if r.KeysOnly {
		for _, kv := range kvs {
			kv.Value = nil
		}
	}
	resp.Kvs = kvs
	return resp, nil
}

func rangeLimit(r *pb.RangeRequest) int64 {
	limit := r.Limit
	if !isDefaultOrdering(r.SortTarget, r.SortOrder) || hasRevisionFilters(r) {
		limit = 0 // everything is needed to sort or filter
	}
	if limit > 0 && limit < math.MaxInt64 {
		limit++ // one more than asked, to know whether there is more
	}
	return limit
}

func isDefaultOrdering(t pb.RangeRequest_SortTarget, o pb.RangeRequest_SortOrder) bool {
	return o == pb.RangeRequest_NONE || (t == pb.RangeRequest_KEY && o == pb.RangeRequest_ASCEND)
}

func hasRevisionFilters(r *pb.RangeRequest) bool {
	return r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
}

func filterRange(kvs []*mvccpb.KeyValue, r *pb.RangeRequest) []*mvccpb.KeyValue {
	keep := kvs[:0]
	for _, kv := range kvs {
		if (r.MaxModRevision != 0 && kv.ModRevision > r.MaxModRevision) ||
			(r.MinModRevision != 0 && kv.ModRevision < r.MinModRevision) ||
			(r.MaxCreateRevision != 0 && kv.CreateRevision > r.MaxCreateRevision) ||
			(r.MinCreateRevision != 0 && kv.CreateRevision < r.MinCreateRevision) {
			continue
		}
		keep = append(keep, kv)
	}
	return keep
}

type kvSorter struct {
	kvs  []*mvccpb.KeyValue
	less func(a, b *mvccpb.KeyValue) bool
}

func (s kvSorter) Len() int           { return len(s.kvs) }
func (s kvSorter) Swap(i, j int)      { s.kvs[i], s.kvs[j] = s.kvs[j], s.kvs[i] }
func (s kvSorter) Less(i, j int) bool { return s.less(s.kvs[i], s.kvs[j]) }

// sortRange orders like etcd, with the same (unstable) sort, so ties come out in
// the same order too.
func sortRange(kvs []*mvccpb.KeyValue, r *pb.RangeRequest) {
	order := r.SortOrder
	if r.SortTarget != pb.RangeRequest_KEY && order == pb.RangeRequest_NONE {
		order = pb.RangeRequest_ASCEND
	}
	if isDefaultOrdering(r.SortTarget, order) {
		return
	}
	var less func(a, b *mvccpb.KeyValue) bool
	switch r.SortTarget {
	case pb.RangeRequest_KEY:
		less = func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Key, b.Key) < 0 }
	case pb.RangeRequest_VERSION:
		less = func(a, b *mvccpb.KeyValue) bool { return a.Version < b.Version }
	case pb.RangeRequest_CREATE:
		less = func(a, b *mvccpb.KeyValue) bool { return a.CreateRevision < b.CreateRevision }
	case pb.RangeRequest_MOD:
		less = func(a, b *mvccpb.KeyValue) bool { return a.ModRevision < b.ModRevision }
	case pb.RangeRequest_VALUE:
		less = func(a, b *mvccpb.KeyValue) bool { return bytes.Compare(a.Value, b.Value) < 0 }
	}
	var sorter sort.Interface = kvSorter{kvs, less}
	if order == pb.RangeRequest_DESCEND {
		sorter = sort.Reverse(sorter)
	}
	sort.Sort(sorter)
}

// writeRev is the revision a write reports: the next one once anything changed.
func writeRev(v txnView) int64 {
	if v.Changed() {
		return v.Rev() + 1
	}
	return v.Rev()
}

func checkPut(v txnView, p *pb.PutRequest) error {
	if p.Lease != 0 && !v.LeaseExists(p.Lease) {
		return store.ErrLeaseNotFound
	}
	_, err := prevKV(v, p)
	return err
}

// prevKV reads the key's current state when the put needs it.
func prevKV(v txnView, p *pb.PutRequest) (*store.KeyValue, error) {
	if !p.IgnoreValue && !p.IgnoreLease && !p.PrevKv {
		return nil, nil
	}
	rr, err := v.Range(p.Key, store.RangeOptions{})
	if err != nil {
		return nil, err
	}
	if len(rr.KVs) == 0 {
		if p.IgnoreValue || p.IgnoreLease {
			return nil, errKeyNotFound
		}
		return nil, nil
	}
	return &rr.KVs[0], nil
}

func put(v txnView, p *pb.PutRequest) (*pb.PutResponse, error) {
	prev, err := prevKV(v, p)
	if err != nil {
		return nil, err
	}
	if prev == nil && (p.IgnoreValue || p.IgnoreLease) {
		return nil, errKeyNotFound // checkPut ran before; unreachable unless a bug
	}
	val, lease := p.Value, p.Lease
	if p.IgnoreValue {
		val = prev.Value
	}
	if p.IgnoreLease {
		lease = prev.Lease
	}
	resp := &pb.PutResponse{}
	if p.PrevKv && prev != nil {
		resp.PrevKv = toPB(*prev)
	}
	if err := v.Put(p.Key, val, lease); err != nil {
		return nil, err
	}
	resp.Header = &pb.ResponseHeader{Revision: v.Rev() + 1}
	return resp, nil
}

func deleteRange(v txnView, d *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	deleted, err := v.DeleteRange(d.Key, d.RangeEnd)
	if err != nil {
		return nil, err
	}
	resp := &pb.DeleteRangeResponse{Deleted: int64(len(deleted)), Header: &pb.ResponseHeader{Revision: writeRev(v)}}
	if d.PrevKv {
		resp.PrevKvs = make([]*mvccpb.KeyValue, len(deleted))
		for i, kv := range deleted {
			resp.PrevKvs[i] = toPB(kv)
		}
	}
	return resp, nil
}

func isTxnReadonly(r *pb.TxnRequest) bool {
	for _, ops := range [][]*pb.RequestOp{r.Success, r.Failure} {
		for _, u := range ops {
			if u.GetRequestRange() == nil {
				return false
			}
		}
	}
	return true
}

// compareToPath evaluates the compares of a Txn and of the nested Txns on the
// branches taken, depth first, before anything is written.
// branchReadsOnly reports whether the branch path takes at the top of r holds
// only ranges.
func branchReadsOnly(r *pb.TxnRequest, path []bool) bool {
	ops := r.Success
	if !path[0] {
		ops = r.Failure
	}
	for _, u := range ops {
		if u.GetRequestRange() == nil {
			return false
		}
	}
	return true
}

func compareToPath(v txnView, r *pb.TxnRequest) []bool {
	ok := applyCompares(v, r.Compare)
	path := []bool{ok}
	ops := r.Success
	if !ok {
		ops = r.Failure
	}
	for _, op := range ops {
		if tv, isTxn := op.Request.(*pb.RequestOp_RequestTxn); isTxn && tv.RequestTxn != nil {
			path = append(path, compareToPath(v, tv.RequestTxn)...)
		}
	}
	return path
}

func applyCompares(v txnView, cmps []*pb.Compare) bool {
	for _, c := range cmps {
		if !applyCompare(v, c) {
			return false
		}
	}
	return true
}

func applyCompare(v txnView, c *pb.Compare) bool {
	// Revisions and versions are in the store's index; values and leases are
	// read from the revision records.
	keysOnly := c.Target != pb.Compare_VALUE && c.Target != pb.Compare_LEASE
	rr, err := v.Range(c.Key, store.RangeOptions{End: c.RangeEnd, KeysOnly: keysOnly})
	if err != nil {
		return false
	}
	if len(rr.KVs) == 0 {
		if c.Target == pb.Compare_VALUE {
			return false // a missing key has no value to compare
		}
		return compareKV(c, store.KeyValue{})
	}
	for _, kv := range rr.KVs {
		if !compareKV(c, kv) {
			return false
		}
	}
	return true
}

func compareKV(c *pb.Compare, kv store.KeyValue) bool {
	var result int
	switch c.Target {
	case pb.Compare_VALUE:
		result = bytes.Compare(kv.Value, c.GetValue())
	case pb.Compare_CREATE:
		result = cmp.Compare(kv.CreateRevision, c.GetCreateRevision())
	case pb.Compare_MOD:
		result = cmp.Compare(kv.ModRevision, c.GetModRevision())
	case pb.Compare_VERSION:
		result = cmp.Compare(kv.Version, c.GetVersion())
	case pb.Compare_LEASE:
		result = cmp.Compare(kv.Lease, c.GetLease())
	}
	switch c.Result {
	case pb.Compare_EQUAL:
		return result == 0
	case pb.Compare_NOT_EQUAL:
		return result != 0
	case pb.Compare_GREATER:
		return result > 0
	case pb.Compare_LESS:
		return result < 0
	}
	return true
}

// checkTxn validates the branches that will run, so a Txn fails before it writes.
func checkTxn(v txnView, r *pb.TxnRequest, path []bool) (int, error) {
	txns := 0
	reqs := r.Success
	if !path[0] {
		reqs = r.Failure
	}
	for _, req := range reqs {
		var err error
		switch tv := req.Request.(type) {
		case *pb.RequestOp_RequestRange:
			err = checkRangeRev(v, tv.RequestRange)
		case *pb.RequestOp_RequestPut:
			err = checkPut(v, tv.RequestPut)
		case *pb.RequestOp_RequestTxn:
			var n int
			n, err = checkTxn(v, tv.RequestTxn, path[1:])
			txns += n + 1
			path = path[n+1:]
		}
		if err != nil {
			return 0, err
		}
	}
	return txns, nil
}

func checkRangeRev(v txnView, r *pb.RangeRequest) error {
	switch {
	case r.Revision == 0:
		return nil
	case r.Revision > v.Rev():
		return store.ErrFutureRev
	case r.Revision < v.CompactRev():
		return store.ErrCompacted
	}
	return nil
}

// txn executes the branches chosen by path and builds the response.
func txn(v txnView, r *pb.TxnRequest, path []bool) (*pb.TxnResponse, error) {
	resp, _ := newTxnResp(r, path)
	if _, err := executeTxn(v, r, path, resp); err != nil {
		return nil, err
	}
	resp.Header = &pb.ResponseHeader{Revision: writeRev(v)}
	return resp, nil
}

func newTxnResp(r *pb.TxnRequest, path []bool) (*pb.TxnResponse, int) {
	reqs := r.Success
	if !path[0] {
		reqs = r.Failure
	}
	resps := make([]*pb.ResponseOp, len(reqs))
	resp := &pb.TxnResponse{Responses: resps, Succeeded: path[0], Header: &pb.ResponseHeader{}}
	txns := 0
	for i, req := range reqs {
		switch tv := req.Request.(type) {
		case *pb.RequestOp_RequestRange:
			resps[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{}}
		case *pb.RequestOp_RequestPut:
			resps[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{}}
		case *pb.RequestOp_RequestDeleteRange:
			resps[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{}}
		case *pb.RequestOp_RequestTxn:
			sub, n := newTxnResp(tv.RequestTxn, path[1:])
			resps[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: sub}}
			path = path[1+n:]
			txns += n + 1
		}
	}
	return resp, txns
}

func executeTxn(v txnView, r *pb.TxnRequest, path []bool, tresp *pb.TxnResponse) (int, error) {
	reqs := r.Success
	if !path[0] {
		reqs = r.Failure
	}
	txns := 0
	for i, req := range reqs {
		respi := tresp.Responses[i].Response
		switch tv := req.Request.(type) {
		case *pb.RequestOp_RequestRange:
			resp, err := executeRange(v, tv.RequestRange)
			if err != nil {
				return 0, err
			}
			respi.(*pb.ResponseOp_ResponseRange).ResponseRange = resp
		case *pb.RequestOp_RequestPut:
			resp, err := put(v, tv.RequestPut)
			if err != nil {
				return 0, err
			}
			respi.(*pb.ResponseOp_ResponsePut).ResponsePut = resp
		case *pb.RequestOp_RequestDeleteRange:
			resp, err := deleteRange(v, tv.RequestDeleteRange)
			if err != nil {
				return 0, err
			}
			respi.(*pb.ResponseOp_ResponseDeleteRange).ResponseDeleteRange = resp
		case *pb.RequestOp_RequestTxn:
			sub := respi.(*pb.ResponseOp_ResponseTxn).ResponseTxn
			n, err := executeTxn(v, tv.RequestTxn, path[1:], sub)
			if err != nil {
				return 0, err
			}
			txns += n + 1
			path = path[n+1:]
		}
	}
	return txns, nil
}
