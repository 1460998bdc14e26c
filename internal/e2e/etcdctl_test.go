package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rhizome-kv/rhizome/internal/testbin"
)

// minVersion is the least version Status may report: kube-apiserver enables
// watch progress requests from etcd 3.5.13 on.
var minVersion = [3]int{3, 5, 13}

// step is one etcdctl command of the scenario, run against etcd and then
// against Rhizome. Both servers start empty and see the same commands in the
// same order, so revisions must agree exactly.
type step struct {
	name  string
	args  []string // etcdctl arguments; {L1}, {L2}... stand for saved lease ids
	stdin string
	// want is the output (see result.text) that both servers must give after
	// normalisation; empty means "the same as etcd's".
	want string
	// save stores the first lease id printed under this name, e.g. "L1".
	save string
	// bg names a background etcdctl (a watch): a step with args starts it, a
	// step without args writes stdin to it, waits for until and ends it.
	bg string
	// until, seen untilN times (default 1) in a background command's stdout,
	// ends the wait of a bg step.
	until  string
	untilN int
	// poll repeats the command until its output is want (lease expiry).
	poll bool
	// summary replaces the raw output by the part the two servers must agree
	// on (it parses JSON, so it runs before the placeholders of normalise).
	summary func(string) string
	// norm removes, after normalise, what legitimately differs.
	norm func(string) string
	// check is a property of the raw stdout; it must hold for both servers.
	check func(stdout string) error
	// knownBug, when set, turns a Rhizome failure of this step into a skip
	// naming the reported bug, and a Rhizome success into an error asking
	// for the mark to go.
	knownBug string
}

// TestEtcdctl drives the real etcdctl v3.7.3 against a `rhizome serve`
// process and a real etcd v3.7.3 process, comparing every command's output.
func TestEtcdctl(t *testing.T) {
	if testing.Short() {
		t.Skip("e2e: starts real processes")
	}
	etcdBin, ctlBin := testbin.Etcd(t)
	rhizomeBin := rhizomeBuild.Path(t)
	etcd := startEtcd(t, etcdBin)
	rhizome := startRhizome(t, rhizomeBin, t.TempDir())
	targets := []*target{newTarget(t, ctlBin, etcd), newTarget(t, ctlBin, rhizome)}

	ran := 0
	for i, st := range scenario() {
		t.Run(st.name, func(t *testing.T) {
			if ran != i {
				t.Skip("each step needs the ones before it: run the whole TestEtcdctl")
			}
			ran++
			outs := make([]string, len(targets))
			var rhizomeFailures []string
			for j, tg := range targets {
				out, err := tg.run(t, st)
				outs[j] = out
				if err != nil {
					err = fmt.Errorf("%s: %w", tg.name, err)
				}
				if err == nil && st.want != "" && out != st.want {
					err = fmt.Errorf("%s printed (normalised):\n%s\nwant:\n%s", tg.name, out, st.want)
				}
				switch {
				case err == nil:
				case tg.p == rhizome:
					rhizomeFailures = append(rhizomeFailures, err.Error())
				default:
					// etcd is the reference: the scenario itself is wrong.
					t.Errorf("reference %v", err)
				}
			}
			if outs[0] != outs[1] {
				rhizomeFailures = append(rhizomeFailures, fmt.Sprintf(
					"etcd and rhizome differ (normalised):\n--- etcd\n%s--- rhizome\n%s", outs[0], outs[1]))
			}
			msg := strings.Join(rhizomeFailures, "\n")
			switch {
			case st.knownBug != "" && msg != "":
				if len(msg) > 2000 {
					msg = msg[:2000] + "..."
				}
				t.Skipf("known bug: %s\n%s", st.knownBug, msg)
			case st.knownBug != "":
				t.Errorf("marked as known bug %q, but Rhizome now behaves like etcd: remove the mark", st.knownBug)
			case msg != "":
				t.Error(msg)
			}
		})
	}
}

// scenario is the etcdctl session. Revisions in the expectations count from
// 1 on an empty server; each comment gives the revision after the step.
func scenario() []step {
	return []step{
		// KV: put and get, as users see them and in JSON.
		{name: "put", args: a("put", "foo", "bar"), want: "OK\n"},                                 // 2
		{name: "put more", args: a("put", "foo/a", "1"), want: "OK\n"},                            // 3
		{name: "put b", args: a("put", "foo/b", "2"), want: "OK\n"},                               // 4
		{name: "put c", args: a("put", "foo/c", "3"), want: "OK\n"},                               // 5
		{name: "put prev-kv", args: a("put", "foo", "bar2", "--prev-kv"), want: "OK\nfoo\nbar\n"}, // 6
		{name: "get", args: a("get", "foo"), want: "foo\nbar2\n"},
		{name: "get json", args: a("get", "foo", "-w", "json"),
			want: `{"header":{"cluster_id":_,"member_id":_,"revision":6,"raft_term":_},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":6,"version":2,"value":"YmFyMg=="}],"count":1}` + "\n"},
		{name: "get prefix", args: a("get", "foo", "--prefix"), want: "foo\nbar2\nfoo/a\n1\nfoo/b\n2\nfoo/c\n3\n"},
		{name: "get limit", args: a("get", "foo", "--prefix", "--limit", "2"), want: "foo\nbar2\nfoo/a\n1\n"},
		{name: "get limit json", args: a("get", "foo", "--prefix", "--limit", "2", "-w", "json"),
			want: `{"header":{"cluster_id":_,"member_id":_,"revision":6,"raft_term":_},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":6,"version":2,"value":"YmFyMg=="},{"key":"Zm9vL2E=","create_revision":3,"mod_revision":3,"version":1,"value":"MQ=="}],"more":true,"count":4}` + "\n"},
		{name: "get keys-only", args: a("get", "foo", "--prefix", "--keys-only"), want: "foo\n\nfoo/a\n\nfoo/b\n\nfoo/c\n\n"},
		{name: "get count-only", args: a("get", "foo", "--prefix", "--count-only", "-w", "fields"),
			want: `"ClusterID" : _` + "\n" + `"MemberID" : _` + "\n" + `"Revision" : 6` + "\n" + `"RaftTerm" : _` + "\n" + `"More" : false` + "\n" + `"Count" : 4` + "\n"},
		{name: "get print-value-only", args: a("get", "foo", "--prefix", "--print-value-only"), want: "bar2\n1\n2\n3\n"},
		{name: "get rev", args: a("get", "foo", "--rev", "2"), want: "foo\nbar\n"},
		{name: "get prefix rev json", args: a("get", "foo", "--prefix", "--rev", "4", "-w", "json"),
			want: `{"header":{"cluster_id":_,"member_id":_,"revision":6,"raft_term":_},"kvs":[{"key":"Zm9v","create_revision":2,"mod_revision":2,"version":1,"value":"YmFy"},{"key":"Zm9vL2E=","create_revision":3,"mod_revision":3,"version":1,"value":"MQ=="},{"key":"Zm9vL2I=","create_revision":4,"mod_revision":4,"version":1,"value":"Mg=="}],"count":3}` + "\n"},
		{name: "get range", args: a("get", "foo/a", "foo/c"), want: "foo/a\n1\nfoo/b\n2\n"},
		{name: "get sorted", args: a("get", "foo", "--prefix", "--sort-by=MODIFY", "--order=DESCEND", "--keys-only"), want: "foo\n\nfoo/c\n\nfoo/b\n\nfoo/a\n\n"},
		{name: "get from-key", args: a("get", "foo/b", "--from-key", "--keys-only"), want: "foo/b\n\nfoo/c\n\n"},
		{name: "get serializable", args: a("get", "foo", "--consistency=s"), want: "foo\nbar2\n"},
		{name: "get missing json", args: a("get", "nothing", "-w", "json"),
			want: `{"header":{"cluster_id":_,"member_id":_,"revision":6,"raft_term":_}}` + "\n"},
		{name: "get future rev", args: a("get", "foo", "--rev", "100"),
			want: "stderr: Error: etcdserver: mvcc: required revision is a future revision\nexit 1\n"},
		{name: "put empty key", args: a("put", "", "x"), want: "stderr: Error: etcdserver: key is not provided\nexit 1\n"},

		// Deletes.
		{name: "del missing", args: a("del", "nothing"), want: "0\n"},
		{name: "del prev-kv", args: a("del", "foo/c", "--prev-kv"), want: "1\nfoo/c\n3\n"}, // 7
		{name: "del prefix", args: a("del", "foo", "--prefix"), want: "3\n"},               // 8
		{name: "del prefix prev-kv", args: a("del", "nothing", "--prefix", "--prev-kv"), want: "0\n"},
		{name: "get after del", args: a("get", "foo", "--prefix", "-w", "json"),
			want: `{"header":{"cluster_id":_,"member_id":_,"revision":8,"raft_term":_}}` + "\n"},

		// Txn in etcdctl's interactive stdin form.
		{name: "txn setup t1", args: a("put", "t1", "v1"), want: "OK\n"}, // 9
		{name: "txn setup t2", args: a("put", "t2", "v2"), want: "OK\n"}, // 10
		{name: "txn success", args: a("txn", "-i"), // 11
			stdin: "value(\"t1\") = \"v1\"\n\nput t1 v1b\nget t2\n\ndel t2\n\n",
			want:  txnPrompt + "SUCCESS\n\nOK\n\nt2\nv2\n"},
		{name: "txn failure", args: a("txn", "-i"), // 12
			stdin: "value(\"t1\") = \"v1\"\n\nput t1 never\n\nput t1 v1c\nget t1\n\n",
			want:  txnPrompt + "FAILURE\n\nOK\n\nt1\nv1c\n"},
		{name: "txn json", args: a("txn", "-i", "-w", "json"), // 13
			stdin: "mod(\"t1\") = \"12\"\nversion(\"t1\") = \"3\"\ncreate(\"t1\") < \"10\"\n\nget t1\ndel t2\n\nput t2 nope\n\n",
			want: txnPrompt + `{"header":{"cluster_id":_,"member_id":_,"revision":13,"raft_term":_},"succeeded":true,"responses":[` +
				`{"Response":{"response_range":{"header":{"revision":12},"kvs":[{"key":"dDE=","create_revision":9,"mod_revision":12,"version":3,"value":"djFj"}],"count":1}}},` +
				`{"Response":{"response_delete_range":{"header":{"revision":13},"deleted":1}}}]}` + "\n"},
		{name: "txn create absent", args: a("txn", "-i"), // 14
			stdin: "create(\"t2\") = \"0\"\n\nput t2 fresh\n\n\n",
			want:  txnPrompt + "SUCCESS\n\nOK\n"},
		{name: "txn failed compare json", args: a("txn", "-i", "-w", "json"),
			stdin: "value(\"t1\") > \"zzz\"\n\n\nget t2\n\n",
			want: txnPrompt + `{"header":{"cluster_id":_,"member_id":_,"revision":14,"raft_term":_},"responses":[` +
				`{"Response":{"response_range":{"header":{"revision":14},"kvs":[{"key":"dDI=","create_revision":14,"mod_revision":14,"version":1,"value":"ZnJlc2g="}],"count":1}}}]}` + "\n"},

		// Watches: started before the writes below and ended after them. The
		// interactive form asks for progress: etcd answers only once the
		// watch exists and every event up to the revision is delivered.
		{name: "watch start prefix prev-kv", bg: "w1", args: a("watch", "-i"),
			stdin: "watch w/ --prefix --prev-kv\nprogress\n", until: "progress notify:",
			want: "progress notify: 14\n"},
		{name: "watch start range json", bg: "w3", args: a("watch", "-i", "-w", "json"),
			// The JSON of a progress response (no events) comes after its
			// "progress notify" line, in a separate write.
			stdin: "watch w/b w/d\nprogress\n", until: `"Events":null`},
		{name: "watch start rev", bg: "w2", args: a("watch", "w/a", "--rev", "15")},
		{name: "watch put", args: a("put", "w/a", "1"), want: "OK\n"},       // 15
		{name: "watch put b", args: a("put", "w/b", "2"), want: "OK\n"},     // 16
		{name: "watch put again", args: a("put", "w/a", "3"), want: "OK\n"}, // 17
		{name: "watch del", args: a("del", "w/a"), want: "1\n"},             // 18
		{name: "watch txn", args: a("txn", "-i"), stdin: "\nput w/c 5\nput w/d 6\n\n\n", // 19
			want: txnPrompt + "SUCCESS\n\nOK\n\nOK\n"},
		{name: "watch del prefix", args: a("del", "w/", "--prefix"), want: "3\n"}, // 20
		{name: "watch put end", args: a("put", "w/a", "end"), want: "OK\n"},       // 21
		{name: "watch events prefix prev-kv", bg: "w1", stdin: "progress\n", until: "progress notify:", untilN: 2,
			want: "progress notify: 14\n" +
				"PUT\nw/a\n1\n" +
				"PUT\nw/b\n2\n" +
				"PUT\nw/a\n1\nw/a\n3\n" +
				"DELETE\nw/a\n3\nw/a\n\n" +
				"PUT\nw/c\n5\nPUT\nw/d\n6\n" +
				"DELETE\nw/b\n2\nw/b\n\nDELETE\nw/c\n5\nw/c\n\nDELETE\nw/d\n6\nw/d\n\n" +
				"PUT\nw/a\nend\n" +
				"progress notify: 21\n"},
		{name: "watch events range json", bg: "w3", stdin: "progress\n", until: `"Events":null`, untilN: 2,
			check: countEvents(4)},
		{name: "watch events rev", bg: "w2", until: "end",
			want: "PUT\nw/a\n1\nPUT\nw/a\n3\nDELETE\nw/a\n\nPUT\nw/a\nend\n"},

		// Leases.
		{name: "lease grant", args: a("lease", "grant", "60"), save: "L1", want: "lease {L1} granted with TTL(60s)\n"},
		{name: "lease grant another", args: a("lease", "grant", "600"), save: "L2", want: "lease {L2} granted with TTL(600s)\n"},
		{name: "put with lease", args: a("put", "lk/1", "a", "--lease={L1}"), want: "OK\n"},       // 22
		{name: "put with lease again", args: a("put", "lk/2", "b", "--lease={L1}"), want: "OK\n"}, // 23
		{name: "lease timetolive", args: a("lease", "timetolive", "{L1}"),
			want: "lease {L1} granted with TTL(60s), remaining(_s)\n"},
		{name: "lease timetolive remaining", args: a("lease", "timetolive", "{L1}"),
			// etcd truncates the seconds left, so a lease granted a moment ago
			// has less than its full TTL remaining.
			check: remainingBelowTTL},
		{name: "lease timetolive keys", args: a("lease", "timetolive", "{L1}", "--keys"),
			want: "lease {L1} granted with TTL(60s), remaining(_s), attached keys([lk/1 lk/2])\n"},
		{name: "lease timetolive keys json", args: a("lease", "timetolive", "{L1}", "--keys", "-w", "json"),
			want: `{"cluster_id":_,"member_id":_,"revision":23,"raft_term":_,"id":{L1},"ttl":_,"granted-ttl":60,"keys":["bGsvMQ==","bGsvMg=="]}` + "\n"},
		{name: "lease keep-alive once", args: a("lease", "keep-alive", "--once", "{L1}"), want: "lease {L1} keepalived with TTL(60)\n"},
		{name: "lease keep-alive once json", args: a("lease", "keep-alive", "--once", "{L1}", "-w", "json"),
			want: `{"cluster_id":_,"member_id":_,"revision":23,"raft_term":_,"ID":{L1},"TTL":60}` + "\n"},
		{name: "lease list", args: a("lease", "list"), norm: sortLinesAfterFirst, want: "found 2 leases\n{L1}\n{L2}\n"},
		{name: "lease list json", args: a("lease", "list", "-w", "json"), norm: sortLeaseIDs,
			want: `{"cluster_id":_,"member_id":_,"revision":23,"raft_term":_,"leases":[{"id":{L1}},{"id":{L2}}]}` + "\n"},
		{name: "get leased json", args: a("get", "lk/", "--prefix", "-w", "json"),
			want: `{"header":{"cluster_id":_,"member_id":_,"revision":23,"raft_term":_},"kvs":[` +
				`{"key":"bGsvMQ==","create_revision":22,"mod_revision":22,"version":1,"value":"YQ==","lease":{L1}},` +
				`{"key":"bGsvMg==","create_revision":23,"mod_revision":23,"version":1,"value":"Yg==","lease":{L1}}],"count":2}` + "\n"},
		{name: "lease revoke", args: a("lease", "revoke", "{L1}"), want: "lease {L1} revoked\n"}, // 24
		{name: "revoke deleted keys", args: a("get", "lk/", "--prefix", "-w", "json"),
			want: `{"header":{"cluster_id":_,"member_id":_,"revision":24,"raft_term":_}}` + "\n"},
		{name: "lease timetolive revoked", args: a("lease", "timetolive", "{L1}"), want: "lease {L1} already expired\n"},
		{name: "lease revoke revoked", args: a("lease", "revoke", "{L1}"),
			want: "stderr: Error: failed to revoke lease (etcdserver: requested lease not found)\nexit 1\n"},
		{name: "lease keep-alive revoked", args: a("lease", "keep-alive", "--once", "{L1}"),
			want: "stderr: Error: etcdserver: requested lease not found\nexit 2\n"},
		{name: "put unknown lease", args: a("put", "x", "y", "--lease=1234"),
			want: "stderr: Error: etcdserver: requested lease not found\nexit 1\n"},
		{name: "lease list after revoke", args: a("lease", "list"), want: "found 1 leases\n{L2}\n"},
		{name: "lease revoke other", args: a("lease", "revoke", "{L2}"), want: "lease {L2} revoked\n"},
		{name: "lease grant short", args: a("lease", "grant", "2"), save: "L3", want: "lease {L3} granted with TTL(2s)\n"},
		{name: "put with short lease", args: a("put", "le/1", "v", "--lease={L3}"), want: "OK\n"}, // 25
		{name: "lease expiry deletes keys", args: a("get", "le/", "--prefix", "-w", "json"), poll: true, // 26
			want: `{"header":{"cluster_id":_,"member_id":_,"revision":26,"raft_term":_}}` + "\n"},
		{name: "lease list after expiry", args: a("lease", "list"), want: "found 0 leases\n"},

		{name: "lease grant for keep-alive", args: a("lease", "grant", "60"), save: "L4", want: "lease {L4} granted with TTL(60s)\n"},
		{name: "lease keep-alive start", bg: "ka", args: a("lease", "keep-alive", "{L4}"), until: "keepalived"},
		{name: "lease keep-alive end", bg: "ka", until: "keepalived", want: "lease {L4} keepalived with TTL(60)\n"},
		{name: "lease revoke kept alive", args: a("lease", "revoke", "{L4}"), want: "lease {L4} revoked\n"},
		{name: "lease grant too large", args: a("lease", "grant", "99999999999"),
			want: "stderr: Error: failed to grant lease (etcdserver: too large lease TTL)\nexit 1\n"},

		// Compaction.
		{name: "compaction", args: a("compaction", "20"), want: "compacted revision 20\n"},
		{name: "get below compaction", args: a("get", "foo", "--rev", "19"),
			want: "stderr: Error: etcdserver: mvcc: required revision has been compacted\nexit 1\n"},
		{name: "get at compaction", args: a("get", "t", "--prefix", "--rev", "20"), want: "t1\nv1c\nt2\nfresh\n"},
		{name: "compaction again", args: a("compaction", "20"),
			want: "stderr: Error: etcdserver: mvcc: required revision has been compacted\nexit 1\n"},
		{name: "compaction future", args: a("compaction", "100"),
			want: "stderr: Error: etcdserver: mvcc: required revision is a future revision\nexit 1\n"},
		{name: "watch below compaction", args: a("watch", "w/", "--prefix", "--rev", "5"),
			want: "stderr: watch was canceled (etcdserver: mvcc: required revision has been compacted)\nstderr: Error: watch is canceled by the server\nexit 5\n"},
		{name: "compaction physical", args: a("compaction", "22", "--physical"), want: "compacted revision 22\n"},
		{name: "get leased at compaction json", args: a("get", "lk/1", "--rev", "22", "-w", "json"),
			want: `{"header":{"cluster_id":_,"member_id":_,"revision":26,"raft_term":_},"kvs":[{"key":"bGsvMQ==","create_revision":22,"mod_revision":22,"version":1,"value":"YQ==","lease":{L1}}],"count":1}` + "\n"},

		// More of put and get, and etcd's request limits.
		{name: "put q", args: a("put", "q1", "a"), want: "OK\n"}, // 27
		{name: "put prev-kv json", args: a("put", "q1", "b", "--prev-kv", "-w", "json"), // 28
			want: `{"header":{"cluster_id":_,"member_id":_,"revision":28,"raft_term":_},"prev_kv":{"key":"cTE=","create_revision":27,"mod_revision":27,"version":1,"value":"YQ=="}}` + "\n"},
		{name: "put ignore-value", args: a("put", "q1", "--ignore-value", "--prev-kv"), want: "OK\nq1\nb\n"}, // 29
		{name: "get after ignore-value", args: a("get", "q1", "-w", "json"),
			want: `{"header":{"cluster_id":_,"member_id":_,"revision":29,"raft_term":_},"kvs":[{"key":"cTE=","create_revision":27,"mod_revision":29,"version":3,"value":"Yg=="}],"count":1}` + "\n"},
		{name: "get min-mod-rev", args: a("get", "q", "--prefix", "--min-mod-rev", "29", "--keys-only"), want: "q1\n\n"},
		{name: "get max-mod-rev", args: a("get", "q", "--prefix", "--max-mod-rev", "28", "--keys-only"), want: ""},
		{name: "get min-create-rev", args: a("get", "", "--from-key", "--min-create-rev", "9", "--max-create-rev", "27", "--keys-only"),
			want: "q1\n\nt1\n\nt2\n\nw/a\n\n"},
		{name: "del from-key", args: a("del", "t2", "--from-key"), want: "2\n"}, // 30
		{name: "txn duplicate key", args: a("txn", "-i"), stdin: "\nput d a\nput d b\n\n\n",
			want: txnPrompt + "stderr: Error: etcdserver: duplicate key given in txn request\nexit 1\n"},
		{name: "txn too many ops", args: a("txn", "-i"), stdin: "\n" + strings.Repeat("put many v\n", 129) + "\n\n",
			want: txnPrompt + "stderr: Error: etcdserver: too many operations in txn request\nexit 1\n"},
		{name: "put too large", args: a("put", "big"), stdin: strings.Repeat("x", 1600<<10), // over the server's 1.5 MiB, under the client's 2 MiB
			want: "stderr: Error: etcdserver: request is too large\nexit 1\n"},
		{name: "lock", args: a("lock", "mylock", "echo", "locked"), want: "locked\n"}, // 31 lock key, 32 its lease revoked
		{name: "lock released", args: a("get", "mylock", "--prefix", "-w", "json"),
			want: `{"header":{"cluster_id":_,"member_id":_,"revision":32,"raft_term":_}}` + "\n"},
		{name: "lease grant for ignore-lease", args: a("lease", "grant", "600"), save: "L5", want: "lease {L5} granted with TTL(600s)\n"},
		{name: "put leased", args: a("put", "q2", "x", "--lease={L5}"), want: "OK\n"},         // 33
		{name: "put ignore-lease", args: a("put", "q2", "y", "--ignore-lease"), want: "OK\n"}, // 34
		{name: "get after ignore-lease", args: a("get", "q2", "-w", "json"),
			want: `{"header":{"cluster_id":_,"member_id":_,"revision":34,"raft_term":_},"kvs":[{"key":"cTI=","create_revision":33,"mod_revision":34,"version":2,"value":"eQ==","lease":{L5}}],"count":1}` + "\n"},
		{name: "get sort by value limit", args: a("get", "q", "--prefix", "--sort-by=VALUE", "--order=DESCEND", "--limit", "1"), want: "q2\ny\n"},
		{name: "get rev 0", args: a("get", "q2", "--rev", "0"), want: "q2\ny\n"},
		{name: "lease revoke ignore-lease", args: a("lease", "revoke", "{L5}"), want: "lease {L5} revoked\n"}, // 35
		{name: "revoke deleted kept lease", args: a("get", "q", "--prefix", "--keys-only"), want: "q1\n\n"},
		{name: "defrag", args: a("defrag"), want: "Finished defragmenting etcd member[{EP}]. took _\n"},
		{name: "alarm list", args: a("alarm", "list"), want: ""},
		{name: "endpoint hashkv", args: a("endpoint", "hashkv"), summary: hashKVRevision, want: "{EP} revision 35\n"},

		// Endpoint and member commands.
		{name: "endpoint health", args: a("endpoint", "health"), want: "{EP} is healthy: successfully committed proposal: took = _\n"},
		{name: "endpoint health json", args: a("endpoint", "health", "-w", "json"), want: `[{"endpoint":"{EP}","health":true,"took":"_"}]` + "\n"},
		{name: "endpoint status json", args: a("endpoint", "status", "-w", "json"), summary: statusSummary, check: versionAtLeast,
			want: "endpoint={EP} revision=35 leader=self\n"},
		{name: "endpoint status db size", args: a("endpoint", "status", "-w", "json"), summary: statusSummary, check: dbSizeReported},
		{name: "endpoint status table", args: a("endpoint", "status"), summary: statusTable,
			want: "{EP} leader=true learner=false errors=\n"},
		{name: "member list", args: a("member", "list"), summary: memberLine, want: "started, e2e, http://{EP}, false\n"},
		{name: "member list json", args: a("member", "list", "-w", "json"), summary: memberJSON,
			want: `[{"name":"e2e","clientURLs":["http://{EP}"]}]` + "\n"},

		// Auth: disabled, as on a fresh etcd (Rhizome cannot enable it).
		{name: "auth status", args: a("auth", "status"), want: "Authentication Status: false\nAuthRevision: 1\n"},
		{name: "auth disable", args: a("auth", "disable"), want: "Authentication Disabled\n"},
	}
}

// txnPrompt is what etcdctl txn -i prints while reading its three sections.
const txnPrompt = "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\n"

func a(args ...string) []string { return args }

// target is one server under test as etcdctl sees it.
type target struct {
	name   string
	p      *proc
	ctl    string
	env    []string
	vars   map[string]string // saved lease ids, hex, by name
	bgs    map[string]*bgCmd
	logDir string   // background commands' logs (their standard error)
	order  []string // var names, in the order saved
}

func newTarget(t *testing.T, ctl string, p *proc) *target {
	tg := &target{name: p.name, p: p, ctl: ctl, vars: map[string]string{}, bgs: map[string]*bgCmd{}, logDir: t.TempDir()}
	// etcdctl reads ETCDCTL_* variables; the caller's must not leak in.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCDCTL_") {
			tg.env = append(tg.env, kv)
		}
	}
	t.Cleanup(func() {
		for _, bg := range tg.bgs {
			bg.end()
		}
	})
	return tg
}

// run runs a step against the target and returns its normalised output.
func (tg *target) run(t *testing.T, st step) (string, error) {
	t.Helper()
	switch {
	case st.bg != "" && st.args != nil:
		return tg.startBg(st)
	case st.bg != "":
		return tg.endBg(st)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		res, err := tg.etcdctl(st.args, st.stdin)
		if err != nil {
			return "", err
		}
		if st.save != "" {
			id := leaseIDPattern.FindStringSubmatch(res.stdout)
			if id == nil {
				return "", fmt.Errorf("no lease id to save as %s in %q", st.save, res.stdout)
			}
			tg.vars[st.save] = id[1]
			tg.order = append(tg.order, st.save)
		}
		out := tg.normalise(res.text(), st)
		if st.poll && out != st.want && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
			continue
		}
		if st.check != nil {
			if err := st.check(res.stdout); err != nil {
				return out, fmt.Errorf("%w; stdout:\n%s", err, res.stdout)
			}
		}
		return out, nil
	}
}

var leaseIDPattern = regexp.MustCompile(`lease ([0-9a-f]{16}) granted`)

// result is what one etcdctl run printed.
type result struct {
	stdout, stderr string
	code           int
}

// text is stdout, then each stderr line that is not the client library's
// JSON log as "stderr: ...", then "exit N" when N is not 0.
func (r result) text() string {
	var b strings.Builder
	b.WriteString(r.stdout)
	for line := range strings.Lines(r.stderr) {
		if strings.HasPrefix(line, `{"level":`) {
			continue
		}
		b.WriteString("stderr: " + strings.TrimRight(line, "\n") + "\n")
	}
	if r.code != 0 {
		fmt.Fprintf(&b, "exit %d\n", r.code)
	}
	return b.String()
}

// etcdctl runs one etcdctl command to completion.
func (tg *target) etcdctl(args []string, stdin string) (result, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := testbin.RunCmd(ctx, testbin.Cmd{Path: tg.ctl, Args: tg.argv(args), Env: tg.env, Stdin: strings.NewReader(stdin)})
	res := result{stdout: out.Stdout, stderr: out.Stderr}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("etcdctl %q timed out; stderr:\n%s", args, res.stderr)
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		return res, fmt.Errorf("etcdctl %q: %w", args, err)
	}
	return res, nil
}

func (tg *target) argv(args []string) []string {
	out := []string{"--endpoints=" + tg.p.ep, "--dial-timeout=5s", "--command-timeout=10s"}
	for _, arg := range args {
		for name, id := range tg.vars {
			arg = strings.ReplaceAll(arg, "{"+name+"}", id)
		}
		out = append(out, arg)
	}
	return out
}

// bgCmd is an etcdctl running in the background (a watch): testbin's
// process with its standard input piped and its standard output copied into
// stdout as it comes; its standard error goes to its log.
type bgCmd struct {
	proc   *testbin.Process
	stdout *syncBuffer
	copied chan struct{} // closed once stdout has everything the process printed
}

func (tg *target) startBg(st step) (string, error) {
	cfg := testbin.DefaultProcessConfig()
	cfg.Name, cfg.Path, cfg.Args, cfg.Env = st.bg, tg.ctl, tg.argv(st.args), tg.env
	cfg.LogPath = filepath.Join(tg.logDir, st.bg+".log")
	cfg.StreamStdout, cfg.StdinPipe = true, true
	p, err := testbin.StartProcess(cfg)
	if err != nil {
		return "", fmt.Errorf("%s: %w", st.bg, err)
	}
	bg := &bgCmd{proc: p, stdout: &syncBuffer{}, copied: make(chan struct{})}
	go func() {
		_, _ = io.Copy(bg.stdout, p.Stdout()) // until etcdctl exits or end closes the pipe
		close(bg.copied)
	}()
	tg.bgs[st.bg] = bg
	return tg.feedAndWait(bg, st)
}

func (tg *target) endBg(st step) (string, error) {
	bg := tg.bgs[st.bg]
	if bg == nil {
		return "", fmt.Errorf("no background command %s", st.bg)
	}
	out, err := tg.feedAndWait(bg, st)
	bg.end()
	delete(tg.bgs, st.bg)
	return out, err
}

// feedAndWait writes the step's stdin to a background command and waits
// until its stdout shows until untilN times.
func (tg *target) feedAndWait(bg *bgCmd, st step) (string, error) {
	if _, err := io.WriteString(bg.proc.Stdin(), st.stdin); err != nil {
		return "", fmt.Errorf("%s: write stdin: %w", st.bg, err)
	}
	var err error
	if st.until != "" {
		n := max(st.untilN, 1)
		err = bg.stdout.waitFor(15*time.Second, func(s string) bool { return strings.Count(s, st.until) >= n })
	}
	out := bg.stdout.String()
	if err == nil && st.check != nil {
		err = st.check(out)
	}
	if err != nil {
		err = fmt.Errorf("%s: %w; stdout so far:\n%s\nstderr (%s):\n%s", st.bg, err, out, bg.proc.LogPath(), bg.proc.LogTail(20))
	}
	return tg.normalise(out, st), err
}

// end kills the command and waits until its output is copied.
func (bg *bgCmd) end() {
	bg.proc.Kill()
	<-bg.copied
}

var (
	// Ids that differ between any two clusters, and etcd's raft term.
	headerIDs = regexp.MustCompile(`"(cluster_id|member_id|raft_term)":\d+`)
	fieldIDs  = regexp.MustCompile(`"(ClusterID|MemberID|RaftTerm)" : \d+`)
	tookText  = regexp.MustCompile(`took (= )?\S+`)
	tookJSON  = regexp.MustCompile(`"took":"[^"]*"`)
	// Seconds left on a lease depend on when the command ran.
	remainingText = regexp.MustCompile(`remaining\(-?\d+s\)`)
	remainingJSON = regexp.MustCompile(`"ttl":-?\d+`)
	// etcd lists a lease's keys from a Go map: in random order.
	attachedText = regexp.MustCompile(`attached keys\(\[([^\]]*)\]\)`)
	attachedJSON = regexp.MustCompile(`"keys":\[([^\]]*)\]`)
)

// normalise replaces what differs between any two servers or runs by
// placeholders: the endpoint by {EP}, saved lease ids by their names (hex and
// decimal), cluster and member ids and raft terms by _, timings by _. The
// step's summary runs before, its norm after.
func (tg *target) normalise(s string, st step) string {
	if st.summary != nil {
		s = st.summary(s)
	}
	s = strings.ReplaceAll(s, tg.p.ep, "{EP}")
	for _, name := range tg.order {
		hex := tg.vars[name]
		s = strings.ReplaceAll(s, hex, "{"+name+"}")
		if id, err := strconv.ParseUint(hex, 16, 64); err == nil {
			s = strings.ReplaceAll(s, strconv.FormatUint(id, 10), "{"+name+"}")
		}
	}
	s = headerIDs.ReplaceAllString(s, `"$1":_`)
	s = fieldIDs.ReplaceAllString(s, `"$1" : _`)
	s = tookText.ReplaceAllString(s, "took ${1}_")
	s = tookJSON.ReplaceAllString(s, `"took":"_"`)
	s = remainingText.ReplaceAllString(s, "remaining(_s)")
	s = remainingJSON.ReplaceAllString(s, `"ttl":_`)
	s = sortInside(s, attachedText, " ")
	s = sortInside(s, attachedJSON, ",")
	if st.norm != nil {
		s = st.norm(s)
	}
	return s
}

// sortInside sorts the sep-separated items of re's first group in place.
func sortInside(s string, re *regexp.Regexp, sep string) string {
	return re.ReplaceAllStringFunc(s, func(m string) string {
		loc := re.FindStringSubmatchIndex(m)
		items := strings.Split(m[loc[2]:loc[3]], sep)
		slices.Sort(items)
		return m[:loc[2]] + strings.Join(items, sep) + m[loc[3]:]
	})
}

// sortLinesAfterFirst orders `lease list` output: etcd lists leases by
// expiry, which is not part of the contract.
func sortLinesAfterFirst(s string) string {
	lines := strings.Split(strings.TrimSuffix(s, "\n"), "\n")
	if len(lines) > 1 {
		slices.Sort(lines[1:])
	}
	return strings.Join(lines, "\n") + "\n"
}

var leaseListJSON = regexp.MustCompile(`"leases":\[(.*)\]`)

func sortLeaseIDs(s string) string { return sortInside(s, leaseListJSON, ",") }

// statusSummary keeps what `endpoint status -w json` must agree on: the
// endpoint, the revision and that the member leads itself. Version, sizes and
// raft indexes legitimately differ.
func statusSummary(s string) string {
	st, err := parseStatus(s)
	if err != nil {
		return s
	}
	leader := "other"
	if st.Status.Leader == st.Status.Header.MemberID {
		leader = "self"
	}
	return fmt.Sprintf("endpoint=%s revision=%d leader=%s\n", st.Endpoint, st.Status.Header.Revision, leader)
}

type epStatus struct {
	Endpoint string
	Status   struct {
		Header struct {
			MemberID uint64 `json:"member_id"`
			Revision int64  `json:"revision"`
		} `json:"header"`
		Version     string `json:"version"`
		DBSize      int64  `json:"dbSize"`
		DBSizeInUse int64  `json:"dbSizeInUse"`
		Leader      uint64 `json:"leader"`
	}
}

func parseStatus(s string) (epStatus, error) {
	var sts []epStatus
	if err := json.Unmarshal([]byte(s), &sts); err != nil {
		return epStatus{}, fmt.Errorf("endpoint status json: %w", err)
	}
	if len(sts) != 1 {
		return epStatus{}, fmt.Errorf("endpoint status json: %d endpoints, want 1", len(sts))
	}
	return sts[0], nil
}

// versionAtLeast checks Status reports a semantic version >= minVersion.
func versionAtLeast(s string) error {
	st, err := parseStatus(s)
	if err != nil {
		return err
	}
	parts := strings.Split(st.Status.Version, ".")
	if len(parts) != 3 {
		return fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", st.Status.Version)
	}
	var v [3]int
	for i, p := range parts {
		if v[i], err = strconv.Atoi(p); err != nil {
			return fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", st.Status.Version)
		}
	}
	if slices.Compare(v[:], minVersion[:]) < 0 {
		return fmt.Errorf("version %s is below %d.%d.%d", st.Status.Version, minVersion[0], minVersion[1], minVersion[2])
	}
	return nil
}

// dbSizeReported checks Status reports a database size, and an in-use size
// no larger than it.
func dbSizeReported(s string) error {
	st, err := parseStatus(s)
	if err != nil {
		return err
	}
	if st.Status.DBSize <= 0 || st.Status.DBSizeInUse <= 0 || st.Status.DBSizeInUse > st.Status.DBSize {
		return fmt.Errorf("dbSize %d, dbSizeInUse %d: want 0 < in use <= size", st.Status.DBSize, st.Status.DBSizeInUse)
	}
	return nil
}

// statusTable keeps, of the table `endpoint status` prints, the endpoint and
// the is-leader, is-learner and errors columns.
func statusTable(s string) string {
	cols := strings.Split(strings.TrimSuffix(s, "\n"), ", ")
	if len(cols) != 16 || strings.Count(s, "\n") != 1 {
		return s
	}
	return fmt.Sprintf("%s leader=%s learner=%s errors=%s\n", cols[0], cols[8], cols[9], cols[13])
}

// hashKVRevision keeps the endpoint and revision of `endpoint hashkv`: the
// hash is of each implementation's own storage.
func hashKVRevision(s string) string {
	cols := strings.Split(strings.TrimSuffix(s, "\n"), ", ")
	if len(cols) != 3 || strings.Count(s, "\n") != 1 {
		return s
	}
	return cols[0] + " revision " + cols[2] + "\n"
}

// memberLine drops the member id and the peer URLs from `member list`: a
// Rhizome site has no raft peers.
func memberLine(s string) string {
	cols := strings.Split(strings.TrimSuffix(s, "\n"), ", ")
	if len(cols) != 6 {
		return s
	}
	return strings.Join([]string{cols[1], cols[2], cols[4], cols[5]}, ", ") + "\n"
}

// memberJSON keeps each member's name and client URLs.
func memberJSON(s string) string {
	var resp struct {
		Members []struct {
			Name       string   `json:"name"`
			ClientURLs []string `json:"clientURLs"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(s), &resp); err != nil {
		return s
	}
	out, err := json.Marshal(resp.Members)
	if err != nil {
		return s
	}
	return string(out) + "\n"
}

var ttlText = regexp.MustCompile(`granted with TTL\((\d+)s\), remaining\((-?\d+)s\)`)

// remainingBelowTTL checks a lease's remaining seconds are less than its
// granted TTL, as etcd's truncation gives for any lease granted earlier.
func remainingBelowTTL(s string) error {
	m := ttlText.FindStringSubmatch(s)
	if m == nil {
		return errors.New("no TTL and remaining in output")
	}
	ttl, _ := strconv.Atoi(m[1])
	rem, _ := strconv.Atoi(m[2])
	if rem >= ttl || rem < ttl-10 {
		return fmt.Errorf("remaining(%ds) of TTL(%ds): want between TTL-10 and TTL-1", rem, ttl)
	}
	return nil
}

// countEvents checks a JSON watch output holds n events in total.
func countEvents(n int) func(string) error {
	return func(s string) error {
		got := 0
		for line := range strings.Lines(s) {
			if !strings.HasPrefix(line, "{") {
				continue
			}
			var resp struct{ Events []json.RawMessage }
			if err := json.Unmarshal([]byte(line), &resp); err != nil {
				return fmt.Errorf("watch json line %q: %w", line, err)
			}
			got += len(resp.Events)
		}
		if got != n {
			return fmt.Errorf("%d events, want %d", got, n)
		}
		return nil
	}
}
