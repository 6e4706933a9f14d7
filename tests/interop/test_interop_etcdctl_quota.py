"""The backend quota and its NOSPACE alarm, side by side with etcd: fill a
member to --quota-backend-bytes, see what is refused and what goes on, free
the space (delete, compact, defrag), disarm, write again."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

import pytest
from interop_tools import ETCD_BIN, ETCD_MISSING, EtcdServer, RaftkvServer, Session, run_both

pytestmark = pytest.mark.timeout(120)

QUOTA = 200_000
VALUE = "x" * 2000
MAX_PUTS = 400  # far more than either needs: etcd stops near 50, raftkv near 90


@dataclass
class Pair:
    etcd: EtcdServer
    raftkv: RaftkvServer


@pytest.fixture
def servers(tmp_path):
    if not os.path.exists(ETCD_BIN):
        pytest.skip(ETCD_MISSING)
    flags = ["--quota-backend-bytes", str(QUOTA)]
    etcd = raftkv = None
    try:
        etcd = EtcdServer(tmp_path / "etcd", size=3, extra_args=flags)
        raftkv = RaftkvServer(tmp_path / "raftkv", size=3, extra_args=flags)
        etcd.wait_ready()
        raftkv.wait_ready()
        yield Pair(etcd, raftkv)
    finally:
        for server in (etcd, raftkv):
            if server is not None:
                server.stop()


def fill(s: Session) -> None:
    """Puts through the first member until one is refused; records the refusal."""
    first = s.server.endpoints[:1]
    for i in range(MAX_PUTS):
        r = s.ctl("put", f"k{i:03d}", VALUE, endpoints=first, record=False)
        if r.rc != 0:
            s.note("refused after some puts", i > 10)
            s.ctl("put", "k-refused", VALUE, endpoints=first)
            return
    raise AssertionError(f"{s.kind} took {MAX_PUTS} puts of {len(VALUE)} bytes under a {QUOTA}-byte quota")


def any_member(text: str) -> str:
    # which members raise the alarm differs: in etcd every member whose own
    # file passes the quota as it applies a write raises one (one, two or all
    # three, by timing); in raftkv the member that received the write does
    return re.sub(r"<MEMBER\d>", "<MEMBER>", text)


def alarms(s: Session, *args: str) -> None:
    r = s.ctl("alarm", *args, record=False)
    s.note(f"alarm {' '.join(args)}: rc, the distinct lines", (r.rc, sorted(set(any_member(s.norm(r.out)).splitlines()))))


def status_errors(s: Session) -> None:
    r = s.ctl("endpoint", "status", "--cluster", "-w", "json", record=False).ok()
    s.note("status errors, member by member", sorted(
        (s.norm(st["Endpoint"]), sorted({any_member(s.norm(e)) for e in st["Status"].get("errors", [])}))
        for st in r.json()))


def test_quota_cycle(servers):
    def scenario(s: Session):
        fill(s)
        alarms(s, "list")
        r = s.ctl("alarm", "list", "-w", "json", record=False).ok()
        s.note("alarm list -w json", sorted({(a["alarm"], "memberID" in a) for a in r.json()["alarms"]}))
        status_errors(s)
        # every member refuses what would grow the store: the alarm went through the log
        for endpoint in s.server.endpoints:
            s.ctl("put", "a", "b", endpoints=[endpoint])
        s.ctl("txn", input="\nput a b\n\n\n")
        s.ctl("txn", input="\nget k000 --keys-only\n\n\n")  # adds nothing: not refused
        s.ctl("lease", "grant", "10")
        # and serves what does not
        s.ctl("get", "k000", "--keys-only")
        deleted = s.ctl("del", "k", "--prefix", record=False).ok()
        s.note("deleted every key written", int(deleted.out) > 10)
        revision = s.ctl("endpoint", "status", "-w", "json", record=False).ok().json()[0]["Status"]["header"]["revision"]
        r = s.ctl("compact", str(revision), record=False).ok()
        s.note("compacted", r.out == f"compacted revision {revision}\n")
        r = s.ctl("defrag", "--cluster", record=False)
        s.note("defrag --cluster", (r.rc, sorted(s.norm(r.out).splitlines())))
        s.ctl("put", "a", "b")  # still refused: the alarm is up until disarmed
        alarms(s, "disarm")
        alarms(s, "list")
        status_errors(s)
        s.ctl("put", "a", "b")
        s.ctl("lease", "grant", "10", record=False).ok()
        s.ctl("get", "a")
    run_both(servers, scenario)
