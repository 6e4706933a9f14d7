"""etcdctl member/endpoint/snapshot/lock/elect/check perf against raftkv and etcd."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from interop_tools import ETCD_BIN, ETCD_MISSING, Session, identify, run_both, run_each

pytestmark = pytest.mark.timeout(90)


# ---------------------------------------------------------------------------
# member list, endpoint status / health / hashkv
# ---------------------------------------------------------------------------


def test_member_list(pair):
    def scenario(s: Session):
        s.ctl("member", "list")
        s.ctl("member", "list", "-w", "table")
        r = s.ctl("member", "list", "-w", "json", record=False).ok()
        doc = r.json()
        doc["header"].pop("revision", None)
        s.note("member list -w json minus header.revision", s.norm(json.dumps(doc)))
    run_both(pair, scenario)


def test_member_list_header_revision(pair):
    def scenario(s: Session):
        s.ctl("put", "a", "1")
        s.ctl("member", "list", "-w", "json")
        s.ctl("member", "list", "-w", "fields")
    run_both(pair, scenario)


def test_endpoint_health(pair):
    def scenario(s: Session):
        s.ctl("endpoint", "health")
        s.ctl("endpoint", "health", "-w", "table")
        r = s.ctl("endpoint", "health", "-w", "json", record=False).ok()
        health = r.json()
        for h in health:
            h.pop("took")
        s.note("endpoint health -w json minus took", s.norm(json.dumps(health)))
    run_both(pair, scenario)


def status_json(s: Session) -> dict:
    r = s.ctl("endpoint", "status", "-w", "json", record=False).ok()
    (status,) = r.json()
    return status


def test_endpoint_status(pair):
    """Fields that must agree; raft index and term legitimately differ (etcd logs conf changes)."""
    def scenario(s: Session):
        s.ctl("put", "a", "1")
        st = status_json(s)
        inner = st["Status"]
        s.note("endpoint", s.norm(st["Endpoint"]))
        s.note("header", s.norm(json.dumps({k: v for k, v in inner["header"].items() if k != "raft_term"})))
        s.note("version", inner["version"])
        s.note("leader is this member", inner["leader"] == inner["header"]["member_id"])
        s.note("raftAppliedIndex == raftIndex", inner.get("raftAppliedIndex") == inner.get("raftIndex"))
        s.note("raftTerm >= 1", inner["raftTerm"] >= 1)
        s.note("fields", sorted(k for k in inner if k not in ("dbSize", "dbSizeInUse")))
        r = s.ctl("endpoint", "status", record=False).ok()
        cols = [c.strip() for c in r.out.strip().split(",")]
        s.note("simple columns", [s.norm(cols[0]), s.norm(cols[1]), cols[2], cols[4], cols[5], len(cols)])
        r = s.ctl("endpoint", "status", "-w", "table", record=False).ok()
        s.note("table header", s.norm(r.out.splitlines()[1]))
    run_both(pair, scenario)


def test_endpoint_status_db_size(pair):
    """Sizes differ (raftkv's is a model of a database file, README "Differences"),
    but both grow with what is written and are reported the same way."""
    for server in (pair.etcd, pair.raftkv):
        s = Session(server, identify(server))
        before = status_json(s)["Status"]
        s.ctl("put", "a", "x" * 100_000).ok()
        deadline = time.monotonic() + 10  # etcd commits its backend every 100 ms
        while (inner := status_json(s)["Status"]).get("dbSizeInUse", 0) < 100_000 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert inner["dbSize"] >= inner["dbSizeInUse"] >= 100_000, (server.kind, inner)
        assert inner["dbSize"] > before.get("dbSize", 0), (server.kind, before, inner)


def hashkv(s: Session, *extra: str) -> int:
    r = s.ctl("endpoint", "hashkv", *extra, "-w", "json", record=False).ok()
    (entry,) = r.json()
    return entry["HashKV"]["hash"]


def hashkv_scenario(s: Session) -> None:
    s.ctl("put", "a", "1")
    s.ctl("put", "b", "2")
    r = s.ctl("endpoint", "hashkv", record=False)
    s.note("endpoint hashkv rc", r.rc)
    s.note("endpoint hashkv output shape", s.norm(re.sub(r", \d+\n", ", <HASH>\n", r.out)) + s.norm(r.err))
    h1 = hashkv(s)
    s.note("same data, same hash", hashkv(s) == h1)
    s.ctl("put", "c", "3")
    h2 = hashkv(s)
    s.note("a write changes the hash", h2 != h1)
    s.note("--rev=3 gives the earlier hash", hashkv(s, "--rev=3") == h1)
    r = s.ctl("endpoint", "hashkv", "-w", "json", record=False).ok()
    entry = r.json()[0]["HashKV"]
    s.note("hashkv json fields", sorted(entry))
    s.note("hashkv header revision / compact_revision",
           (entry["header"]["revision"], entry.get("compact_revision", 0)))
    s.ctl("compaction", "3")
    r = s.ctl("endpoint", "hashkv", "-w", "json", record=False).ok()
    s.note("compact_revision after compaction 3", r.json()[0]["HashKV"].get("compact_revision", 0))
    s.ctl("endpoint", "hashkv", "--rev=2")     # below the compaction: error


def test_endpoint_hashkv(pair):
    """hashkv works and behaves like etcd's (same data same hash, --rev, fields); values aside."""
    run_both(pair, hashkv_scenario)


def test_endpoint_hashkv_value_is_raftkvs_own(pair):
    """README, "Differences from etcd": HashKV values are raftkv's own. etcd's
    is crc32 (Castagnoli) over its backend's revision keys and marshalled
    KeyValues; raftkv's is the same for the same history (members agree),
    and differs from etcd's."""
    def scenario(s: Session):
        s.ctl("put", "a", "1")
        s.ctl("put", "b", "2")
        for label in ("hash", "hash again"):
            s.note(label, s.ctl("endpoint", "hashkv", "-w", "json", record=False).json()[0]["HashKV"]["hash"])
    etcd, raftkv = run_each(pair, scenario)
    etcd_hash, etcd_again = (int(step.out) for step in etcd.steps[2:])
    raftkv_hash, raftkv_again = (int(step.out) for step in raftkv.steps[2:])
    assert etcd_hash == etcd_again == 1827592406
    assert raftkv_hash == raftkv_again != etcd_hash


# ---------------------------------------------------------------------------
# other maintenance commands
# ---------------------------------------------------------------------------


MAINTENANCE = {
    "alarm list": ["alarm", "list"],
    "defrag": ["defrag"],
    "user list": ["user", "list"],
    "role list": ["role", "list"],
    "auth disable": ["auth", "disable"],
}


@pytest.mark.parametrize("name", list(MAINTENANCE))
def test_other_maintenance_commands(pair, name):
    args = MAINTENANCE[name]
    run_both(pair, lambda s: s.ctl(*args))


def test_move_leader_single_member(pair):
    """move-leader to the only member (itself): etcd's answer, and raftkv's."""
    def scenario(s: Session):
        mid = status_json(s)["Status"]["header"]["member_id"]
        s.ctl("move-leader", format(mid, "x"))
        s.ctl("move-leader", "123")
    run_both(pair, scenario)


def test_version_and_json_status_version(pair):
    def scenario(s: Session):
        s.ctl("version")
        s.note("server version", status_json(s)["Status"]["version"])
    run_both(pair, scenario)


# ---------------------------------------------------------------------------
# snapshot save
# ---------------------------------------------------------------------------


def snapshot_save(s: Session, path) -> None:
    s.ctl("put", "a", "1")
    s.ctl("put", "b", "2")
    r = s.ctl("snapshot", "save", str(path), record=False)
    s.note("snapshot save rc", r.rc)
    s.note("snapshot save says", r.out.replace(str(path), "<PATH>") + s.norm(r.err))


def snapshot_status(s: Session, path) -> None:
    r = s.ctl("snapshot", "status", str(path), "-w", "json", record=False)
    s.note("snapshot status rc", r.rc)
    s.note("snapshot status error", r.err)
    if r.rc == 0:
        st = r.json()
        s.note("snapshot status revision", st["revision"])
        s.note("snapshot status fields", sorted(st))


def test_snapshot_save(pair, tmp_path):
    paths = iter([tmp_path / "etcd.db", tmp_path / "raftkv.db"])
    run_both(pair, lambda s: snapshot_save(s, next(paths)))


def test_snapshot_status_of_a_saved_file_is_etcds_only(pair, tmp_path):
    """README, "Differences from etcd": `snapshot save` writes raftkv's own
    format, which `etcdctl snapshot status/restore` cannot read (etcd's is a
    bbolt database)."""
    def scenario(s: Session):
        path = tmp_path / f"{s.kind}.db"
        snapshot_save(s, path)
        snapshot_status(s, path)
    etcd, raftkv = run_each(pair, scenario)
    notes = {kind: {step.args[1]: step.out for step in session.steps if step.args[:1] == ["#"]}
             for kind, session in (("etcd", etcd), ("raftkv", raftkv))}
    assert notes["etcd"]["snapshot save rc"] == notes["raftkv"]["snapshot save rc"] == "0\n"
    assert notes["etcd"]["snapshot status rc"] == "0\n"
    assert notes["raftkv"]["snapshot status rc"] == "1\n"
    assert notes["raftkv"]["snapshot status error"] == "Error: invalid database\n\n"


# ---------------------------------------------------------------------------
# lock and elect (etcdctl implements both on KV+Lease+Watch: clientv3/concurrency)
# ---------------------------------------------------------------------------


def test_lock_runs_command(pair):
    def scenario(s: Session):
        s.ctl("lock", "mylock", "echo", "inside the lock")
        s.ctl("lock", "--ttl=5", "mylock", "--", "sh", "-c", "echo $ETCD_LOCK_NAME ${ETCD_LOCK_KEY%/*}")
        s.ctl("lock", "mylock", "false")                 # the command's failure is etcdctl's
        s.ctl("get", "mylock", "--prefix", "--keys-only")  # released: nothing left
    run_both(pair, scenario)


def test_lock_contention(pair):
    """A second locker waits until the holder lets go; the lock keys follow etcd's layout."""
    def scenario(s: Session):
        with s.bg("lock", "contended") as holder:
            key = holder.read_lines(1, timeout=10)
            s.record_lines("holder prints its key", key)
            with s.bg("lock", "contended", "echo", "second got it") as waiter:
                s.record_lines("waiter while held", waiter.read_lines(1, timeout=1.0))
                r = s.ctl("get", "contended", "--prefix", "-w", "json", record=False).ok()
                kvs = r.json()["kvs"]
                s.note("lock keys while contended (count, versions, values empty)",
                       (len(kvs), [kv["version"] for kv in kvs], [kv.get("value", "") for kv in kvs]))
                # (sorted by key = by lease id: etcd's ids ascend, raftkv's are random, so
                # compare the set of create revisions, not their order)
                s.note("create revisions", sorted(kv["create_revision"] for kv in kvs))
                holder.terminate()
                s.record_lines("waiter after release", waiter.read_lines(1, timeout=10))
                waiter.proc.wait(timeout=10)
                s.note("waiter exit", waiter.proc.returncode)
        time.sleep(0.2)
        s.ctl("get", "contended", "--prefix", "--keys-only")
    run_both(pair, scenario)


def test_elect(pair):
    """Campaign, observe (-l), a second candidate waits, takes over when the leader quits."""
    def scenario(s: Session):
        with s.bg("elect", "myelection", "p1") as leader:
            s.record_lines("leader p1", leader.read_lines(2, timeout=10))
            with s.bg("elect", "-l", "myelection") as observer:
                s.record_lines("observer sees", observer.read_lines(2, timeout=10))
                with s.bg("elect", "myelection", "p2") as second:
                    s.record_lines("p2 while p1 leads", second.read_lines(1, timeout=1.0))
                    leader.terminate()
                    s.record_lines("p2 after p1 resigned", second.read_lines(2, timeout=10))
                    s.record_lines("observer after", observer.read_lines(2, timeout=10))
                    second.terminate()
        s.ctl("elect", "myelection", "-l", "p3")   # proposal with -l: client error
        s.ctl("elect")
    run_both(pair, scenario)


# ---------------------------------------------------------------------------
# check perf (slow: 60 s against each server)
# ---------------------------------------------------------------------------


PERF_SKIP = "INTEROP_SKIP_PERF is set (check perf takes a minute per server)"


@pytest.fixture
def quiet(pool):
    """A claim function for servers with no spares starting in the background (they would
    compete for the 2 CPUs and skew latencies); everything claimed is released after."""
    if os.environ.get("INTEROP_SKIP_PERF"):
        pytest.skip(PERF_SKIP)
    pool.hold_spares()
    claimed = []

    def claim(kind):
        if kind == "etcd" and not os.path.exists(ETCD_BIN):
            pytest.skip(ETCD_MISSING)
        server = pool.claim(kind, spare=False)
        claimed.append(server)
        return server
    try:
        yield claim
    finally:
        for server in claimed:
            pool.release(server)


def check_perf(server) -> tuple[int, str]:
    r = server.ctl("check", "perf", "--load=s", timeout=240)
    # drop the progress bar (carriage-return redraws) and keep the verdict lines
    text = (r.out + r.err).replace("\r", "\n")
    verdict = re.findall(r"(?:PASS|FAIL|Error)\b[^\n]*", text)
    print(f"\n===== check perf --load=s against {server.kind}: rc={r.rc}\n" + "\n".join(verdict))
    return r.rc, "\n".join(verdict)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["etcd", "raftkv"])
def test_check_perf(quiet, kind):
    """``etcdctl check perf --load=s`` (60 s of 150 writes/s from 50 clients) runs to its
    verdicts, with no request failing. The verdicts themselves (throughput, slowest request,
    stddev) measure how busy the machine is as much as the server (a throughput of 128/s
    failed it once with a second test suite running on the same two cores): they are judged
    by the bench side by side with etcd (issue 11), not by a timed test."""
    rc, verdict = check_perf(quiet(kind))
    lines = verdict.splitlines()
    # failed requests would come first ("FAIL: too many errors", then each error)
    assert lines[0].startswith(("PASS: Throughput is ", "FAIL: Throughput too low: ")), verdict
    assert not any(line.startswith("Error") for line in lines), verdict
    assert lines[-1] in ("PASS", "FAIL") and (rc == 0) == (lines[-1] == "PASS"), verdict


def test_lock_after_holder_crash(pair):
    """kill -9 of a lock holder: its session lease (--ttl=3) expires and the waiter takes
    over within the TTL plus lease-expiry slack, on both servers.  (etcdctl 3.4's elect has
    no --ttl: its 60 s session is too slow for the same test.)"""
    import signal

    def scenario(s: Session):
        with s.bg("lock", "--ttl=3", "crashlock") as holder:
            s.record_lines("holder key", holder.read_lines(1, timeout=10))
            with s.bg("lock", "crashlock", "echo", "waiter got it") as waiter:
                s.record_lines("waiter while held", waiter.read_lines(1, timeout=0.5))
                holder.terminate_with(signal.SIGKILL)
                start = time.monotonic()
                s.record_lines("waiter after holder's kill -9", waiter.read_lines(1, timeout=15))
                waited = time.monotonic() - start
                s.note("lock taken over within 1..10 s", 1.0 <= waited <= 10.0)
    run_both(pair, scenario)
