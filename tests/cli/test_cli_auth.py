"""raftkv auth|user|role and --user, printed as etcdctl prints them: the same
session runs with raftkv's command on one member and with etcdctl on another."""

from __future__ import annotations

import pytest
from cli_helpers import ETCDCTL_MISSING, HAVE_ETCDCTL, etcdctl, invoke

from raftkv.cluster.local import LocalCluster

pytestmark = [pytest.mark.timeout(180), pytest.mark.skipif(not HAVE_ETCDCTL, reason=ETCDCTL_MISSING)]

ROOT = ("--user", "root:rootpw")
U1 = ("--user", "u1:pw")

SESSION = [
    ("auth", "enable"),
    ("user", "add", "root:rootpw"),
    ("user", "add", "root:x"),
    ("auth", "enable"),
    ("put", "a", "1"),
    (*ROOT, "put", "a", "1"),
    ("--user", "root:wrong", "get", "a"),
    (*ROOT, "role", "add", "r1"),
    (*ROOT, "role", "grant-permission", "r1", "read", "a"),
    (*ROOT, "role", "grant-permission", "r1", "readwrite", "--prefix", "p/"),
    (*ROOT, "role", "grant-permission", "r1", "write", "b", "c"),
    (*ROOT, "role", "grant-permission", "r1", "read", "z", "--from-key"),
    (*ROOT, "role", "get", "r1"),
    (*ROOT, "role", "get", "root"),
    (*ROOT, "role", "list"),
    (*ROOT, "user", "add", "u1:pw"),
    (*ROOT, "user", "grant-role", "u1", "r1"),
    (*ROOT, "user", "get", "u1"),
    (*ROOT, "user", "list"),
    (*U1, "get", "a"),
    (*U1, "put", "a", "2"),
    (*U1, "put", "p/x", "2"),
    (*U1, "get", "p/", "--prefix"),
    (*U1, "user", "list"),
    (*ROOT, "role", "revoke-permission", "r1", "a"),
    (*ROOT, "role", "revoke-permission", "r1", "b", "c"),
    (*ROOT, "role", "revoke-permission", "r1", "--prefix", "p/"),
    (*ROOT, "role", "revoke-permission", "r1", "a"),
    (*ROOT, "user", "revoke-role", "u1", "r1"),
    (*ROOT, "user", "delete", "root"),
    (*ROOT, "role", "delete", "r1"),
    (*ROOT, "user", "delete", "u1"),
    (*ROOT, "user", "get", "u1", "-w", "json"),
    (*ROOT, "auth", "disable"),
    ("user", "list"),
]


@pytest.fixture
def two_members(tmp_path):
    clusters = [LocalCluster(1, str(tmp_path / name)) for name in ("ours", "etcdctl")]
    try:
        for cluster in clusters:
            cluster.start()
        yield [cluster.members[0].endpoint for cluster in clusters]
    finally:
        for cluster in clusters:
            cluster.stop()


def first_line(text: str) -> str:
    lines = [line for line in text.splitlines() if not line.startswith("{")]  # etcdctl's client log lines
    return lines[0] if lines else ""


def test_auth_verbs_print_what_etcdctl_prints(two_members):
    ours, theirs = two_members
    differing = []
    for args in SESSION:
        mine = invoke(ours, *args)
        etcds = etcdctl(theirs, *args)
        # stdout alike; errors: the same message (raftkv adds a hint after " — ")
        same_out = mine.out == etcds.out or ("json" in args and mine.out.strip() == etcds.out.strip())
        mine_error = first_line(mine.err).split(" — ")[0]
        if not same_out or (mine.code == 0) != (etcds.code == 0) or mine_error != first_line(etcds.err):
            differing.append(f"{' '.join(args)}\n  raftkv:  {mine.code} {mine.out!r} {mine.err!r}\n"
                             f"  etcdctl: {etcds.code} {etcds.out!r} {etcds.err!r}")
    assert not differing, "\n".join(differing)
