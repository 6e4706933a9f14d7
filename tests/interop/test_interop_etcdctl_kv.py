"""etcdctl get/put/del/compaction against raftkv and a real etcd, outputs compared.

Reads that change nothing share one seeded pair of servers per module
(``seeded``); every test that writes gets fresh servers (``pair``) so both
start at revision 1 and revisions must come out identical.
"""

from __future__ import annotations

import subprocess

import pytest

from interop_tools import ETCDCTL_BIN, Session, run_both, run_on_seeded, seeded_pair

pytestmark = pytest.mark.timeout(90)

# Every write bumps the revision by one: a=rev2, ..., c re-created at rev13.
SEED = [
    ("put", "a", "1"),        # 2
    ("put", "b", "2"),        # 3
    ("put", "c", "3"),        # 4
    ("put", "a", "10"),       # 5  a: version 2
    ("put", "foo", "x"),      # 6
    ("put", "foo/bar", "y"),  # 7
    ("put", "foo/baz", "z"),  # 8
    ("put", "b", "20"),       # 9
    ("put", "b", "200"),      # 10 b: version 3
    ("put", "zz", "last"),    # 11
    ("del", "c"),             # 12
    ("put", "c", "33"),       # 13 c: re-created, version 1
]


def seed(s: Session) -> None:
    for cmd in SEED:
        r = s.ctl(*cmd)
        assert r.rc == 0, r.err


@pytest.fixture(scope="module")
def seeded(pool):
    """One etcd and one raftkv with SEED applied, shared by the read-only tests."""
    with seeded_pair(pool, seed) as servers:
        yield servers


def run_read(seeded, *args: str):
    return run_on_seeded(seeded, lambda s: s.ctl(*args))


SORTS = ["KEY", "VERSION", "CREATE", "MODIFY", "VALUE"]
ORDERS = ["ASCEND", "DESCEND"]

READS = [
    # single keys, every output format
    ("get", "a"),
    ("get", "a", "-w", "simple"),
    ("get", "a", "-w", "json"),
    ("get", "a", "-w", "fields"),
    ("get", "a", "-w", "table"),
    ("get", "a", "--hex"),
    ("get", "missing"),
    ("get", "missing", "-w", "json"),
    ("get", "missing", "-w", "fields"),
    # ranges
    ("get", "a", "c"),
    ("get", "a", "c", "-w", "json"),
    ("get", "", "--prefix"),
    ("get", "foo", "--prefix"),
    ("get", "foo", "--prefix", "-w", "json"),
    ("get", "foo/", "--prefix", "-w", "fields"),
    ("get", "b", "--from-key"),
    ("get", "", "--from-key"),
    ("get", "foo/", "--from-key", "--keys-only"),
    # history
    ("get", "a", "--rev=2"),
    ("get", "a", "--rev=4", "-w", "json"),
    ("get", "c", "--rev=12"),
    ("get", "c", "--rev=11", "-w", "json"),
    ("get", "", "--prefix", "--rev=8"),
    ("get", "a", "--rev=13"),
    ("get", "a", "--rev=14"),
    ("get", "a", "--rev=1000"),
    # limits
    ("get", "", "--prefix", "--limit=2"),
    ("get", "", "--prefix", "--limit=2", "-w", "json"),
    ("get", "", "--prefix", "--limit=100", "-w", "fields"),
    ("get", "b", "--from-key", "--limit=1", "-w", "fields"),
    ("get", "", "--prefix", "--limit=3", "--sort-by=VALUE", "--order=DESCEND"),
    ("get", "", "--prefix", "--limit=2", "--sort-by=MODIFY", "--order=ASCEND", "-w", "json"),
    # sorting
    *[("get", "", "--prefix", f"--sort-by={s}", f"--order={o}") for s in SORTS for o in ORDERS],
    ("get", "", "--prefix", "--order=DESCEND"),
    ("get", "", "--prefix", "--order=ASCEND"),
    ("get", "", "--prefix", "--sort-by=CREATE"),
    ("get", "", "--prefix", "--sort-by=VERSION", "--order=DESCEND", "-w", "json"),
    ("get", "", "--prefix", "--sort-by=BOGUS"),
    ("get", "", "--prefix", "--order=SIDEWAYS"),
    # projections
    ("get", "", "--prefix", "--keys-only"),
    ("get", "", "--prefix", "--keys-only", "-w", "json"),
    ("get", "", "--prefix", "--print-value-only"),
    ("get", "a", "--print-value-only", "-w", "json"),
    ("get", "", "--prefix", "--count-only"),   # etcdctl 3.4 has no --count-only: its own error
    # combinations
    ("get", "", "--prefix", "--keys-only", "--sort-by=VALUE", "--order=DESCEND"),
    ("get", "", "--prefix", "--rev=9", "--limit=2", "--sort-by=VERSION", "--order=DESCEND", "-w", "json"),
    ("get", "", "--prefix", "--rev=10", "--consistency=s", "--keys-only"),
    ("get", "b", "--from-key", "--rev=5", "--print-value-only"),
    ("get", "foo", "--prefix", "--hex", "-w", "fields"),
    ("get", "a", "zz", "--sort-by=MODIFY", "--order=DESCEND", "--limit=1", "-w", "fields"),
    # consistency
    ("get", "", "--prefix", "--consistency=s"),
    ("get", "a", "--consistency=s", "-w", "json"),
    ("get", "a", "--consistency=l", "-w", "json"),
    ("get", "a", "--consistency=x"),
    # errors from the client's own argument checks
    ("get",),
    ("get", "a", "--prefix", "--from-key"),
]


@pytest.mark.parametrize("args", READS, ids=[" ".join(a) or "get" for a in READS])
def test_get(seeded, args):
    run_read(seeded, *args)


def test_get_protobuf_output(seeded):
    """-w protobuf prints the raw RangeResponse; decode both and compare minus the header ids."""
    from raftkv._proto.etcdserverpb import rpc_pb2

    etcd, raftkv = seeded
    decoded = []
    for server in (etcd, raftkv):
        proc = subprocess.run([ETCDCTL_BIN, f"--endpoints={server.endpoints[0]}", "get", "", "--prefix",
                               "-w", "protobuf"], env={"ETCDCTL_API": "3"}, capture_output=True, timeout=20)
        assert proc.returncode == 0, proc.stderr
        msg = rpc_pb2.RangeResponse.FromString(proc.stdout)
        msg.header.cluster_id = msg.header.member_id = msg.header.raft_term = 0
        decoded.append(str(msg))
    assert decoded[0] == decoded[1]


# ---------------------------------------------------------------------------
# writes: fresh servers each
# ---------------------------------------------------------------------------


def test_put_flags(pair):
    def scenario(s: Session):
        s.ctl("put", "k", "v1")
        s.ctl("put", "k", "v2", "--prev-kv")
        s.ctl("put", "k", "v3", "--prev-kv", "-w", "json")
        s.ctl("put", "k", "v4", "-w", "fields")
        s.ctl("put", "fresh", "v", "--prev-kv")
        s.ctl("put", "k", "--ignore-value")           # keeps the value, bumps the version
        s.ctl("put", "nokey", "--ignore-value")       # etcdserver: key not found
        s.ctl("put", "k", "v5", "--ignore-lease")     # k has no lease: fine
        s.ctl("put", "k", "v6", "--lease=123456789")  # no such lease
        s.ctl("put", "", "v")                         # empty key
        s.ctl("put", "onlykey")                       # value from (empty) stdin
        s.ctl("put", "stdin-key", input="from stdin\n")
        s.ctl("put", "--", "-dash", "-v")
        s.ctl("put", "sp ace", "multi word value")
        s.ctl("get", "", "--prefix", "-w", "json")
        s.ctl("get", "", "--prefix")
    run_both(pair, scenario)


def test_put_with_lease_ignore_flags(pair):
    def scenario(s: Session):
        r = s.ctl("lease", "grant", "300")
        lease = r.out.split()[1]
        s.ctl("put", "k", "v", f"--lease={lease}")
        s.ctl("put", "k", "v2", "--ignore-lease")
        s.ctl("get", "k", "-w", "json")
        s.ctl("put", "k", "--ignore-value", "--ignore-lease", "-w", "json")
        s.ctl("put", "k", "v3", "--ignore-lease", f"--lease={lease}")  # both: error
        s.ctl("put", "k", "v3")                                           # drops the lease
        s.ctl("get", "k", "-w", "json")
        s.ctl("lease", "timetolive", lease, "--keys")
    run_both(pair, scenario)


def test_del_flags(pair):
    def scenario(s: Session):
        for k, v in [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("foo", "f"), ("foo/1", "x"),
                     ("foo/2", "y"), ("fop", "z"), ("z", "last")]:
            s.ctl("put", k, v)
        s.ctl("del", "missing")
        s.ctl("del", "a")
        s.ctl("del", "a", "-w", "json")
        s.ctl("del", "b", "--prev-kv")
        s.ctl("del", "foo", "--prefix", "--prev-kv", "-w", "json")
        s.ctl("get", "", "--prefix", "--keys-only")
        s.ctl("del", "c", "e")                         # range [c, e)
        s.ctl("del", "fop", "--from-key", "--prev-kv")
        s.ctl("get", "", "--prefix", "-w", "json")
        s.ctl("put", "x", "1")
        s.ctl("del", "", "--prefix", "-w", "fields")
        s.ctl("del", "x", "--prefix", "--from-key")    # client-side error
        s.ctl("del")
        s.ctl("get", "", "--from-key", "-w", "json")
    run_both(pair, scenario)


def test_del_from_key_empty(pair):
    def scenario(s: Session):
        for k in ["a", "b", "c"]:
            s.ctl("put", k, k)
        s.ctl("del", "", "--from-key", "--prev-kv")
        s.ctl("get", "", "--prefix", "-w", "json")
    run_both(pair, scenario)


# ---------------------------------------------------------------------------
# compaction
# ---------------------------------------------------------------------------


def test_compaction(pair):
    def scenario(s: Session):
        for i in range(1, 6):
            s.ctl("put", "k", f"v{i}")              # revisions 2..6
        s.ctl("put", "other", "o")                    # 7
        s.ctl("get", "k", "--rev=3")
        s.ctl("compaction", "4")
        s.ctl("get", "k", "--rev=3")                  # below: compacted
        s.ctl("get", "k", "--rev=3", "-w", "json")
        s.ctl("get", "k", "--rev=4")                  # at the compaction revision: still readable
        s.ctl("get", "k", "--rev=5", "-w", "json")
        s.ctl("compaction", "3")                      # already compacted
        s.ctl("compaction", "4")                      # same revision again
        s.ctl("compaction", "100")                    # future revision
        s.ctl("compaction", "6", "--physical")
        s.ctl("get", "k", "--rev=5")
        s.ctl("get", "", "--prefix", "-w", "json")
        s.ctl("compaction", "0")
        s.ctl("compaction", "x")
        s.ctl("compaction")
    run_both(pair, scenario)


def test_compaction_then_write(pair):
    """Compacting the current revision, then writing and reading history again."""
    def scenario(s: Session):
        s.ctl("put", "a", "1")
        s.ctl("put", "a", "2")
        s.ctl("compaction", "3")
        s.ctl("get", "a", "-w", "json")
        s.ctl("put", "a", "3")
        s.ctl("get", "a", "--rev=3", "-w", "json")
        s.ctl("get", "a", "--rev=2")
        s.ctl("del", "a", "--prev-kv", "-w", "json")
        s.ctl("compaction", "5")
        s.ctl("get", "a", "--rev=4", "-w", "json")
        s.ctl("get", "a", "-w", "json")
    run_both(pair, scenario)
