"""Every verb against a 3-member cluster, as real processes; then a member
is killed and the cluster keeps working through the CLI."""

from __future__ import annotations

import json
import re
import time

import pytest

from cli_helpers import Background, run, wait_until

pytestmark = pytest.mark.timeout(180)


def eps(cluster, first: int | None = None) -> str:
    endpoints = list(cluster.endpoints)
    if first is not None:
        endpoints.insert(0, endpoints.pop(first))
    return ",".join(endpoints)


def test_kv_verbs_on_every_member(cluster3):
    e = eps(cluster3)
    assert run("put", "c3/k", "v", endpoints=e).ok().out == "OK\n"
    for member in cluster3.members:
        assert run("get", "c3/k", "--print-value-only", endpoints=member.endpoint).ok().out == "v\n"
        wait_until(lambda m=member: run("get", "c3/k", "--consistency", "s", "--print-value-only",
                                        endpoints=m.endpoint).out == "v\n",
                   timeout=10, what=f"{member.name} has the key")
    txn = 'value("c3/k") = "v"\n\nput c3/k w\n\n\n'
    assert run("txn", endpoints=e, input=txn).ok().lines == ["SUCCESS", "", "OK"]
    assert run("del", "c3/", "--prefix", endpoints=e).ok().out == "1\n"
    revision = json.loads(run("-w", "json", "put", "c3/x", "1", endpoints=e).ok().out)["header"]["revision"]
    assert run("compact", str(revision), endpoints=e).ok().out == f"compacted revision {revision}\n"


def test_membership_and_health_views(cluster3):
    e = eps(cluster3)
    members = run("member", "list", endpoints=e).ok().lines
    assert sorted(line.split(", ")[2] for line in members) == ["m0", "m1", "m2"]
    assert all(line.split(", ")[1] == "started" for line in members)
    status = run("endpoint", "status", endpoints=e).ok().lines
    assert len(status) == 3 and sum(line.split(", ")[4] == "true" for line in status) == 1
    health = run("endpoint", "health", endpoints=e).ok().lines
    assert len(health) == 3 and all("is healthy" in line for line in health)
    summary = run("cluster", "status", endpoints=e).ok().lines
    assert re.fullmatch(r"cluster: 3 members, leader m[012], revision \d+, healthy", summary[0])
    assert sum(1 for line in summary[2:] if " * " in line) == 1  # one leader row


def test_member_add_and_remove_a_learner(cluster3):
    e = eps(cluster3)
    (peer_port,) = __import__("raftkv.cluster.local", fromlist=["free_ports"]).free_ports(1)
    added = run("member", "add", "extra", "--peer-urls", f"http://127.0.0.1:{peer_port}", "--learner",
                endpoints=e).ok()
    match = re.match(r"Member ([0-9a-f ]{16}) added to cluster ([0-9a-f ]{16})\n", added.out)
    assert match, added.out
    assert "raftkv serve --name extra --initial-cluster-state existing" in added.out
    member_id = match.group(1).strip()
    listed = run("member", "list", endpoints=e).ok().out
    assert f"{member_id}, unstarted, , http://127.0.0.1:{peer_port}" in listed
    assert run("member", "remove", member_id, endpoints=e).ok().out.startswith(f"Member {match.group(1)} removed")
    assert member_id not in run("member", "list", endpoints=e).ok().out


def test_lease_lock_elect_snapshot_objects(cluster3, tmp_path):
    e = eps(cluster3)
    lease = run("lease", "grant", "60", endpoints=e).ok().out.split()[1]
    run("put", "c3/leased", "1", "--lease", lease, endpoints=e).ok()
    assert "attached keys([c3/leased])" in run("lease", "timetolive", lease, "--keys", endpoints=e).ok().out
    renewed = run("lease", "keep-alive", "--once", lease, endpoints=e).ok().out
    assert renewed.startswith(f"lease {lease} keepalived")
    assert lease in run("lease", "list", endpoints=e).ok().out
    run("lease", "revoke", lease, endpoints=e).ok()

    assert run("lock", "c3-lock", "--", "true", endpoints=e).code == 0
    with Background("elect", "c3-election", "me", endpoints=e) as leader:
        leader.wait_for(lambda: leader.out_lines[-1:] == ["me"], "elected")
        assert leader.interrupt() == 0

    path = tmp_path / "c3.snap"
    run("snapshot", "save", str(path), endpoints=e).ok()
    assert run("snapshot", "status", str(path), endpoints=e).ok().out.count(", ") == 3

    app = tmp_path / "app.yaml"
    app.write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c3\n  labels: {app: c3}\ndata: {k: v}\n")
    assert run("obj", "apply", "-f", str(app), endpoints=e).ok().out == "configmap/c3 created\n"
    assert run("obj", "get", "cm", "-l", "app=c3", "-o", "name", endpoints=e).ok().out == "configmap/c3\n"
    assert run("obj", "label", "cm", "c3", "x=y", endpoints=e).ok().out == "configmap/c3 labeled\n"
    assert "Name:" in run("obj", "describe", "cm", "c3", endpoints=e).ok().out
    assert run("obj", "delete", "-f", str(app), endpoints=e).ok().out == 'configmap "c3" deleted\n'


def test_kill_the_leader_and_keep_working(cluster3):
    leader = cluster3.leader_index()
    victim = cluster3.members[leader]
    e = eps(cluster3, first=leader)  # the dead member is the first endpoint the CLI tries
    with Background("watch", "c3/live", "--prefix", endpoints=e) as watch, \
            Background("obj", "get", "configmaps", "--watch", endpoints=e) as objects:
        deadline = time.monotonic() + 20
        while "c3/live/probe" not in watch.out_lines:
            assert time.monotonic() < deadline, watch.err
            run("put", "c3/live/probe", "p", endpoints=e).ok()
            time.sleep(0.3)
        objects.wait_for(lambda: objects.out_lines[:1] and objects.out_lines[0].startswith("NAME"),
                         "the object watch listed")
        cluster3.kill(leader)
        # the CLI goes on through the other members
        assert run("put", "c3/live/after", "still here", endpoints=e, timeout=60).ok().out == "OK\n"
        assert run("get", "c3/live/after", "--print-value-only", endpoints=e).ok().out == "still here\n"
        watch.wait_for(lambda: "still here" in watch.out_lines, "the watch resumed on another member",
                       timeout=30)
        assert "watch: lost" in watch.err and "resumed on" in watch.err
        assert watch.interrupt() == 0
        cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: after-kill\n"
        assert run("obj", "apply", "-f", "-", endpoints=e, input=cm).ok().out == "configmap/after-kill created\n"
        objects.wait_for(lambda: any(line.startswith("after-kill ") for line in objects.out_lines),
                         "the object watch goes on through another member", timeout=30)
        assert objects.interrupt() == 0

        health = run("endpoint", "health", endpoints=e)
        assert health.code == 1
        assert sum("is healthy" in line for line in health.out.splitlines()) == 2
        assert f"{victim.endpoint} is unhealthy" in health.err
        assert health.err.strip().endswith("`raftkv endpoint status` shows which one leads")

        status = run("endpoint", "status", endpoints=e)
        assert status.code == 1 and len(status.out.splitlines()) == 2
        assert f"Failed to get the status of endpoint http://{victim.endpoint}" in status.err

        summary = wait_until(lambda: (lambda r: r if r.code == 0 else None)(run("cluster", "status", endpoints=e)),
                             timeout=30, what="a new leader")
        assert "degraded (2/3 members healthy)" in summary.lines[0]
        assert victim.name in summary.out and "unreachable" in summary.out

        only_dead = run("get", "c3/live/after", endpoints=victim.endpoint)
        assert only_dead.code == 1
        assert only_dead.err == f"Error: no member reachable at {victim.endpoint} — is `raftkv serve` running?\n"
    cluster3.restart(leader)
    wait_until(lambda: run("endpoint", "health", endpoints=eps(cluster3)).code == 0, timeout=30,
               what="all healthy again")
