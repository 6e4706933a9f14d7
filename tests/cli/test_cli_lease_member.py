"""lease, member, endpoint and cluster status against a real single member."""

from __future__ import annotations

import json
import re

import pytest

from cli_helpers import ETCDCTL_MISSING, HAVE_ETCDCTL, etcdctl

needs_etcdctl = pytest.mark.skipif(not HAVE_ETCDCTL, reason=ETCDCTL_MISSING)


def _grant(kv, ttl: int = 60) -> str:
    out = kv("lease", "grant", str(ttl)).ok().out
    match = re.fullmatch(r"lease ([0-9a-f]{16}) granted with TTL\((\d+)s\)\n", out)
    assert match, out
    assert match.group(2) == str(ttl)
    return match.group(1)


def test_lease_life_cycle(kv):
    lease = _grant(kv, 120)
    key = kv.prefix + "leased"
    kv("put", key, "v", "--lease", lease).ok()
    assert re.fullmatch(rf"lease {lease} granted with TTL\(120s\), remaining\(1[12]\ds\)\n",
                        kv("lease", "timetolive", lease).ok().out)
    assert kv("lease", "timetolive", lease, "--keys").ok().out.endswith(f", attached keys([{key}])\n")
    assert kv("lease", "keep-alive", "--once", lease).ok().out == f"lease {lease} keepalived with TTL(120)\n"
    listed = kv("lease", "list").ok().lines
    assert re.fullmatch(r"found \d+ leases", listed[0]) and lease in listed[1:]
    assert kv("lease", "revoke", lease).ok().out == f"lease {lease} revoked\n"
    assert kv("get", key).ok().out == ""  # the lease took its key along
    assert kv("lease", "timetolive", lease).ok().out == f"lease {lease} already expired\n"


def test_lease_json(kv):
    data = json.loads(kv("lease", "grant", "30", "-w", "json").ok().out)
    assert set(data) == {"cluster_id", "member_id", "revision", "raft_term", "ID", "TTL", "Error"}
    lease = f"{data['ID']:x}"
    ttl = json.loads(kv("lease", "timetolive", lease, "--keys", "-w", "json").ok().out)
    assert ttl["id"] == data["ID"] and ttl["granted-ttl"] == 30 and ttl["keys"] is None
    listed = json.loads(kv("lease", "list", "-w", "json").ok().out)
    assert {"id": data["ID"]} in listed["leases"]
    kv("lease", "revoke", lease).ok()


@needs_etcdctl
def test_lease_timetolive_json_matches_etcdctl(kv):
    lease = _grant(kv, 600)
    kv("put", kv.prefix + "a", "1", "--lease", lease).ok()
    ours = json.loads(kv("-w", "json", "lease", "timetolive", lease, "--keys").ok().out)
    theirs = json.loads(etcdctl(kv.endpoint, "-w", "json", "lease", "timetolive", lease, "--keys").out)
    ours.pop("ttl"), theirs.pop("ttl")  # seconds tick on
    assert ours == theirs
    kv("lease", "revoke", lease).ok()


def test_revoking_an_unknown_lease_is_one_line_with_a_hint(kv):
    result = kv("lease", "revoke", "1234abcd")
    assert result.code == 1
    assert result.err == ("Error: etcdserver: requested lease not found — check the lease ID (hex) "
                          "with `raftkv lease list`\n")


def test_member_list_formats(kv):
    line = kv("member", "list").ok().out.strip()
    assert re.fullmatch(r"[0-9a-f]+, started, m0, http://127\.0\.0\.1:\d+, http://127\.0\.0\.1:\d+, false", line)
    table = kv("member", "list", "-w", "table").ok().lines
    assert "| IS LEARNER |" in table[1] and len({len(t) for t in table}) == 1
    data = json.loads(kv("member", "list", "-w", "json").ok().out)
    assert [m["name"] for m in data["members"]] == ["m0"]


def test_endpoint_status_and_health(kv):
    line = kv("endpoint", "status").ok().out
    fields = line.rstrip("\n").split(", ")
    assert fields[0] == f"http://{kv.endpoint}" and fields[4] == "true" and fields[5] == "false"
    data = json.loads(kv("endpoint", "status", "-w", "json").ok().out)
    assert data[0]["Endpoint"] == f"http://{kv.endpoint}" and data[0]["Status"]["leader"]
    table = kv("endpoint", "status", "-w", "table").ok().lines
    assert "RAFT APPLIED INDEX" in table[1]
    health = kv("endpoint", "health").ok().out
    assert re.fullmatch(rf"http://{re.escape(kv.endpoint)} is healthy: successfully committed proposal: "
                        r"took = [0-9.]+(µs|ms|s)\n", health)
    assert json.loads(kv("endpoint", "health", "-w", "json").ok().out)[0]["health"] is True
    only = kv("endpoint", "health", "--endpoints-only").ok().out
    assert only.startswith(f"{kv.endpoint} is healthy")


@needs_etcdctl
def test_endpoint_status_table_matches_etcdctl_columns(kv):
    ours = kv("endpoint", "status", "-w", "table").ok().lines
    theirs = etcdctl(kv.endpoint, "endpoint", "status", "--cluster", "-w", "table").out.splitlines()
    assert ours[1] == theirs[1]  # the header row, aligned the same way


def test_cluster_status_of_one_member(kv):
    result = kv("cluster", "status").ok()
    assert result.lines[0].startswith("cluster: 1 member, leader m0, revision ")
    assert result.lines[0].endswith("healthy")
    assert result.lines[1].split()[:3] == ["NAME", "ID", "CLIENT"]
    data = json.loads(kv("cluster", "status", "-w", "json").ok().out)
    assert data["health"] == "healthy" and data["members"][0]["leader"] is True
