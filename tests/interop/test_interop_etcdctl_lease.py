"""etcdctl lease grant/revoke/keep-alive/timetolive/list against raftkv and etcd.

Lease ids differ between servers (each makes its own); the normalizer names
them <ID1>, <ID2>, ... by first appearance, so the same lease must be the same
name in both transcripts.  Remaining TTLs depend on timing and are compared
separately, with a tolerance.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from interop_tools import Session, compare, identify, run_both

pytestmark = pytest.mark.timeout(90)


def grant(s: Session, ttl: str, *extra: str) -> str:
    r = s.ctl("lease", "grant", ttl, *extra)
    m = re.match(r"lease ([0-9a-f]+) granted", r.out)
    assert m, r.out + r.err
    return m.group(1)


def test_lease_lifecycle(pair):
    def scenario(s: Session):
        l1 = grant(s, "100")
        l2 = grant(s, "200")
        s.ctl("put", "k1", "v1", f"--lease={l1}")
        s.ctl("put", "k2", "v2", f"--lease={l1}")
        s.ctl("put", "k3", "v3", f"--lease={l2}")
        s.ctl("lease", "timetolive", l1)
        s.ctl("lease", "timetolive", l1, "--keys")
        s.ctl("lease", "list")
        s.ctl("lease", "keep-alive", "--once", l1)
        s.ctl("lease", "keep-alive", "--once", l2, "-w", "json")
        s.ctl("get", "k", "--prefix", "-w", "json")
        s.ctl("lease", "revoke", l1)
        s.ctl("get", "k", "--prefix", "-w", "json")      # k1, k2 gone at one revision
        s.ctl("get", "k1", "--rev=6", "-w", "json")
        s.ctl("lease", "timetolive", l1)                  # already expired
        s.ctl("lease", "timetolive", l1, "--keys")
        s.ctl("lease", "revoke", l1)                      # not found
        s.ctl("lease", "keep-alive", "--once", l1)        # not found
        s.ctl("lease", "list")
        s.ctl("lease", "revoke", l2, "-w", "json")
        s.ctl("lease", "list", "-w", "json")
        s.ctl("get", "", "--prefix", "-w", "json")
    run_both(pair, scenario)


def test_lease_grant_edge_cases(pair):
    def scenario(s: Session):
        s.ctl("lease", "grant", "0")
        s.ctl("lease", "grant", "1")                 # etcd raises tiny TTLs to its minimum
        s.ctl("lease", "grant", "-5")
        s.ctl("lease", "grant", "9000000000")        # etcd's maximum
        s.ctl("lease", "grant", "9000000001")        # too large
        s.ctl("lease", "grant", "abc")
        s.ctl("lease", "grant")
        s.ctl("lease", "grant", "60", "-w", "json")
        s.ctl("lease", "grant", "60", "-w", "fields")
        s.ctl("lease", "timetolive", "deadbeef")
        s.ctl("lease", "timetolive", "nothex")
        s.ctl("lease", "revoke", "deadbeef")
        s.ctl("lease", "keep-alive", "--once", "deadbeef")
    run_both(pair, scenario)


def test_lease_list_order(pair):
    """etcd 3.4 lists leases sorted by expiry time (lessor.Leases sorts leasesByExpiry)."""
    def scenario(s: Session):
        grant(s, "3000")
        grant(s, "1000")
        grant(s, "2000")
        grant(s, "9000000000")
        grant(s, "60")
        s.ctl("lease", "list")
        s.ctl("lease", "list", "-w", "json")
    run_both(pair, scenario)


def test_lease_timetolive_json(pair):
    """-w json of timetolive: every field but the remaining TTL must match."""
    def scenario(s: Session):
        l1 = grant(s, "120")
        s.ctl("put", "a", "1", f"--lease={l1}")
        s.ctl("put", "b", "1", f"--lease={l1}")
        r = s.ctl("lease", "timetolive", l1, "--keys", "-w", "json", record=False)
        doc = json.loads(r.out)
        ttl = doc.pop("ttl")
        assert 115 <= ttl <= 120, doc
        doc["keys"] = sorted(doc["keys"])   # etcd lists them in Go map order (random)
        s.note("timetolive --keys -w json without ttl", s.norm(json.dumps(doc, sort_keys=True)))
    run_both(pair, scenario)


def remaining_after(s: Session, granted: int, wait: float) -> int:
    lease = grant(s, str(granted))
    time.sleep(wait)
    r = s.ctl("lease", "timetolive", lease, "-w", "json", record=False).ok()
    return r.json()["ttl"]


def test_lease_remaining_ttl_truncated(pair):
    """etcd's LeaseTimeToLive truncates the remaining time: 99 right after granting 100
    (an earlier raftkv rounded up and said 100)."""
    got = {}
    for server in (pair.etcd, pair.raftkv):
        s = Session(server, identify(server))
        got[server.kind] = remaining_after(s, 100, 0.0)
    assert all(97 <= ttl <= 99 for ttl in got.values()), got


def test_lease_remaining_ttl_sane(pair):
    for server in (pair.etcd, pair.raftkv):
        s = Session(server, identify(server))
        assert 98 <= remaining_after(s, 100, 0.0) <= 100, server.kind
        assert 97 <= remaining_after(s, 100, 1.5) <= 99, server.kind


def test_lease_expiry(pair):
    """A short lease expires by itself on both servers, deleting its keys at one revision."""
    sessions = [Session(server, identify(server)) for server in (pair.etcd, pair.raftkv)]
    for s in sessions:
        s.ctl("put", "keep", "1")
        lease = grant(s, "3")
        s.ctl("put", "short/a", "1", f"--lease={lease}")
        s.ctl("put", "short/b", "1", f"--lease={lease}")
        s.lease = lease
    time.sleep(4.5)
    deadline = time.monotonic() + 10
    for s in sessions:
        # etcd revokes an expired lease soon after; allow a little time
        while time.monotonic() < deadline:
            r = s.ctl("get", "short", "--prefix", "--keys-only", "-w", "json", record=False).ok()
            if r.json().get("count", 0) == 0:
                break
            time.sleep(0.2)
        s.ctl("get", "", "--prefix", "-w", "json")
        s.ctl("lease", "timetolive", s.lease)
        s.ctl("get", "short/a", "--rev=5", "--keys-only")
        s.ctl("lease", "list")
    compare(*sessions)


def test_lease_keep_alive_stream(pair):
    """``lease keep-alive ID`` (no --once) prints a line per refresh until stopped."""
    def scenario(s: Session):
        lease = grant(s, "10")
        with s.bg("lease", "keep-alive", lease) as k:
            first = k.read_lines(1, timeout=10)
            k.terminate()
            s.record_lines("lease keep-alive (first line)", first)
        s.ctl("lease", "timetolive", lease)
        s.ctl("lease", "revoke", lease)
        with s.bg("lease", "keep-alive", lease) as k:
            lines = k.read_lines(3, timeout=10)
            k.terminate()
            s.record_lines("lease keep-alive on a revoked lease", lines, k.stderr)
    run_both(pair, scenario)
