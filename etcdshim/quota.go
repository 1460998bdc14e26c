package etcdshim

import pb "go.etcd.io/etcd/api/v3/etcdserverpb"

// What a write is charged against the space quota: etcd's own estimates
// (server/storage/quota.go), so that a store fills up after the same requests.
const kvQuotaOverhead = 256 // a key's metadata

func costPut(r *pb.PutRequest) int { return kvQuotaOverhead + len(r.Key) + len(r.Value) }

// costTxn charges the costlier branch; a Txn without puts costs nothing.
func costTxn(r *pb.TxnRequest) int {
	branch := func(ops []*pb.RequestOp) (n int) {
		for _, op := range ops {
			if p := op.GetRequestPut(); p != nil {
				n += costPut(p)
			} else if t := op.GetRequestTxn(); t != nil {
				n += costTxn(t)
			}
		}
		return n
	}
	return max(branch(r.Success), branch(r.Failure))
}
