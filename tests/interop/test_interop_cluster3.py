"""etcdctl against a 3-member raftkv LocalCluster (and a 3-member etcd for comparison).

Every member is a real ``raftkv serve`` process; members are killed with
kill -9.  Both clusters start empty at revision 1, so revisions compare exactly.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from interop_tools import Session, compare, etcdctl_bg, identify

pytestmark = pytest.mark.timeout(120)


def cluster_session(server) -> Session:
    """A session whose normalizer calls every member <MEMBER>: unpinned requests may be
    answered by any member (tests that care check the member id explicitly)."""
    norm = identify(server)
    for mid, name in list(norm.names.items()):
        if name.startswith("<MEMBER"):
            norm.names[mid] = "<MEMBER>"
    return Session(server, norm)


def sessions(etcd_cluster3, raftkv_cluster3) -> tuple[Session, Session]:
    return cluster_session(etcd_cluster3), cluster_session(raftkv_cluster3)


def leader_of(s: Session, endpoints: list[str] | None = None) -> int:
    """Index of the member every reachable member names as leader."""
    endpoints = endpoints or s.server.endpoints
    deadline = time.monotonic() + 30
    while True:
        r = s.ctl("endpoint", "status", "-w", "json", endpoints=endpoints, record=False)
        if r.rc == 0:
            statuses = r.json()
            leaders = {st["Status"].get("leader", 0) for st in statuses}
            ids = {st["Status"]["header"]["member_id"]: st["Endpoint"] for st in statuses}
            if len(leaders) == 1 and (leader := leaders.pop()) in ids:
                return s.server.endpoints.index(ids[leader])
        if time.monotonic() > deadline:
            raise AssertionError(f"no agreed leader: {r.out}{r.err}")
        time.sleep(0.2)


def every_member(s: Session) -> None:
    eps = s.server.endpoints
    for i, ep in enumerate(eps):
        s.ctl("put", f"k{i}", f"via member {i}", endpoints=[ep])
    for ep in eps:
        s.ctl("get", "k", "--prefix", endpoints=[ep])
        s.ctl("get", "k", "--prefix", "-w", "json", endpoints=[ep])
        s.ctl("get", "k", "--prefix", "--consistency=s", "--keys-only", endpoints=[ep])
    # a txn through one member, read back through another
    s.ctl("txn", input='ver("k0") = "1"\n\nput k0 updated\nget k1\n\n\n', endpoints=[eps[1]])
    s.ctl("get", "k0", "-w", "json", endpoints=[eps[2]])
    s.ctl("get", "k0", "--rev=2", endpoints=[eps[0]])
    # every member reports the same leader and revision; each is healthy
    r = s.ctl("endpoint", "status", "-w", "json", record=False).ok()
    statuses = r.json()
    s.note("one leader", len({st["Status"]["leader"] for st in statuses}))
    s.note("revisions", [st["Status"]["header"]["revision"] for st in statuses])
    s.note("versions", [st["Status"]["version"] for st in statuses])
    s.note("each member answers as itself", [
        s.norm(st["Endpoint"]) + " " + identify(s.server).names[st["Status"]["header"]["member_id"]]
        for st in statuses])
    r = s.ctl("endpoint", "health", record=False)
    s.note("endpoint health", (r.rc, sorted(s.norm(r.out + r.err).splitlines())))
    # a lease granted via one member, used via another, revoked via the third
    r = s.ctl("lease", "grant", "100", endpoints=[eps[0]])
    lease = r.out.split()[1]
    s.ctl("put", "leased", "x", f"--lease={lease}", endpoints=[eps[1]])
    s.ctl("lease", "timetolive", lease, "--keys", endpoints=[eps[2]])
    s.ctl("lease", "revoke", lease, endpoints=[eps[2]])
    s.ctl("get", "leased", endpoints=[eps[0]])


def test_cluster3_every_member(etcd_cluster3, raftkv_cluster3):
    a, b = sessions(etcd_cluster3, raftkv_cluster3)
    every_member(a)
    every_member(b)
    compare(a, b)


def test_cluster3_watch_on_other_member(etcd_cluster3, raftkv_cluster3):
    """A watch on one member sees writes made through the others, in order."""
    results = []
    for s in sessions(etcd_cluster3, raftkv_cluster3):
        eps = s.server.endpoints
        with s.bg("watch", "w", "--prefix", "-w", "json") as w:   # etcdctl picks a member
            time.sleep(1.0)   # etcdctl prints nothing when the watch is created
            for i, ep in enumerate(eps):
                s.ctl("put", f"w/{i}", str(i), endpoints=[ep])
            s.ctl("del", "w/", "--prefix", endpoints=[eps[1]])
            lines = w.read_lines(4, timeout=15) + w.drain(0.3)
            w.terminate()
            s.record_lines("watch w --prefix -w json", lines, w.stderr)
        # a historical watch pinned to each member in turn
        for ep in eps:
            with etcdctl_bg([ep], ["watch", "w/", "--prefix", "--rev=2"]) as w3:
                lines = w3.read_lines(15, timeout=15) + w3.drain(0.3)
                w3.terminate()
                s.record_lines(f"watch w/ --prefix --rev=2 on {s.norm(ep)}", lines, w3.stderr)
        results.append(s)
    compare(*results)


def member_list_rows(s: Session, endpoint: str) -> list[str]:
    r = s.ctl("member", "list", endpoints=[endpoint], record=False).ok()
    return sorted(s.norm(line) for line in r.out.splitlines())


def test_cluster3_member_list(etcd_cluster3, raftkv_cluster3):
    results = []
    for s in sessions(etcd_cluster3, raftkv_cluster3):
        for ep in s.server.endpoints:
            s.note(f"member list via {s.norm(ep)}", member_list_rows(s, ep))
        r = s.ctl("member", "list", "-w", "json", record=False).ok()
        ids = [m["ID"] for m in r.json()["members"]]
        s.note("member count", len(ids))
        s.note("members listed in id order", ids == sorted(ids))
        r = s.ctl("endpoint", "status", "--cluster", "-w", "json", record=False)
        s.note("endpoint status --cluster rows", len(r.json()) if r.rc == 0 else r.err)
        r = s.ctl("endpoint", "health", "--cluster", record=False)
        s.note("endpoint health --cluster", sorted(s.norm(r.out + r.err).splitlines()))
        results.append(s)
    compare(*results)


def kill_and_check(s: Session, victim: int) -> None:
    eps = s.server.endpoints
    s.ctl("put", "before", "1")
    s.server.kill(victim)
    alive = [ep for i, ep in enumerate(eps) if i != victim]
    leader_of(s, alive)    # wait for (re-)election among the survivors
    # still working, through each survivor and through the full endpoint list
    for i, ep in enumerate(alive):
        s.ctl("put", f"after/{i}", "ok", endpoints=[ep], timeout=30)
    s.ctl("put", "after/all", "ok", timeout=30)
    for ep in alive:
        s.ctl("get", "", "--prefix", "-w", "json", endpoints=[ep], timeout=30)
    s.ctl("get", "", "--prefix", "--consistency=s", "--keys-only", endpoints=[alive[0]], timeout=30)
    s.ctl("txn", input='ver("before") = "1"\n\nput before 2\n\n\n', timeout=30)
    s.ctl("del", "after/", "--prefix", "--prev-kv", timeout=30)
    r = s.ctl("endpoint", "health", "--command-timeout=2s", record=False, timeout=30)
    s.note("endpoint health rc with a dead member", r.rc)
    victim_ep = s.norm(eps[victim])
    lines = sorted(s.norm(line).replace(victim_ep, "<VICTIM>").split(":")[0]
                   for line in (r.out + r.err).splitlines()
                   if "is healthy" in line or "is unhealthy" in line)
    s.note("healthy/unhealthy", [line if "VICTIM" in line else line.split(" ", 1)[1] for line in lines])
    r = s.ctl("endpoint", "status", "-w", "json", endpoints=alive, record=False).ok()
    s.note("survivors' revisions", [st["Status"]["header"]["revision"] for st in r.json()])
    # bring the victim back: it catches up (same revision, same hash) and serves again
    s.server.restart(victim)
    deadline = time.monotonic() + 30
    while True:
        r = s.ctl("endpoint", "hashkv", "-w", "json", record=False, timeout=30)
        state = {(e["HashKV"]["header"]["revision"], e["HashKV"]["hash"]) for e in r.json()} \
            if r.rc == 0 and len(r.json()) == 3 else None
        if (state and len(state) == 1) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    s.note("after restart: hashkv over 3 members agrees", (r.rc, state and len(state)))
    s.ctl("get", "", "--prefix", "--consistency=s", endpoints=[eps[victim]], timeout=30)
    s.ctl("put", "back", "again", endpoints=[eps[victim]], timeout=30)
    s.ctl("get", "back", "-w", "json", endpoints=[eps[(victim + 1) % 3]], timeout=30)


@pytest.mark.parametrize("who", ["follower", "leader"])
def test_cluster3_survives_kill9(etcd_cluster3, raftkv_cluster3, who):
    results = []
    for s in sessions(etcd_cluster3, raftkv_cluster3):
        leader = leader_of(s)
        victim = leader if who == "leader" else (leader + 1) % 3
        kill_and_check(s, victim)
        results.append(s)
    compare(*results)


def hashes_and_move_leader(s: Session) -> None:
    eps = s.server.endpoints
    for i in range(5):
        s.ctl("put", f"h{i}", str(i), endpoints=[eps[i % 3]])
    s.ctl("del", "h1")
    # every member has the same history, so the same hash (etcd's corruption check relies on it)
    deadline = time.monotonic() + 10
    while True:
        r = s.ctl("endpoint", "hashkv", "-w", "json", record=False)
        hashes = {e["HashKV"]["hash"] for e in r.json()} if r.rc == 0 else {r.err}
        if len(hashes) == 1 or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    s.note("endpoint hashkv rc, distinct hashes over 3 members", (r.rc, len(hashes)))
    # hand leadership to a follower, through the leader
    leader = leader_of(s)
    target = (leader + 1) % 3
    ids = identify(s.server).names
    target_id = next(mid for mid, name in ids.items() if name == f"<MEMBER{target}>")
    r = s.ctl("move-leader", format(target_id, "x"), endpoints=[eps[leader]], record=False)
    s.note("move-leader via the leader", (r.rc, s.norm(r.out + r.err)))
    s.note("new leader is the target", leader_of(s) == target)
    follower = eps[(target + 1) % 3]
    r = s.ctl("move-leader", format(target_id, "x"), endpoints=[follower], record=False)
    s.note("move-leader via a follower", (r.rc, s.norm(r.out + r.err).replace(s.norm(follower), "<FOLLOWER>")))
    s.ctl("put", "after-move", "ok")
    s.ctl("get", "after-move", "-w", "json", endpoints=[eps[target]])


def test_cluster3_hashkv_and_move_leader(etcd_cluster3, raftkv_cluster3):
    a, b = sessions(etcd_cluster3, raftkv_cluster3)
    hashes_and_move_leader(a)
    hashes_and_move_leader(b)
    compare(a, b)


def membership_changes(s: Session, new_peer: str) -> dict:
    """member add / list / update / promote / remove of a member that never starts (quorum
    stays 3 of 4).  Returns the update and promote results, which are compared separately."""
    def norm(text: str) -> str:
        text = s.norm(text).replace(new_peer, "<NEWPEER>")
        # ETCD_INITIAL_CLUSTER lists members in member-id order, and the ids differ
        return re.sub(r'ETCD_INITIAL_CLUSTER="([^"]*)"',
                      lambda m: 'ETCD_INITIAL_CLUSTER="' + ",".join(sorted(m.group(1).split(","))) + '"',
                      text)

    # etcd (--strict-reconfig-check) refuses with "unhealthy cluster" until every member has
    # been connected for 5 s; keep asking as a person would
    deadline = time.monotonic() + 20
    while True:
        r = s.ctl("member", "add", "m3", f"--peer-urls=http://{new_peer}", record=False)
        if "unhealthy cluster" not in r.err or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    s.note("member add", (r.rc, norm(r.out + r.err)))
    new_id = r.out.split()[1] if r.rc == 0 else "0"
    r = s.ctl("member", "list", record=False)
    s.note("member list after add", (r.rc, sorted(norm(r.out + r.err).splitlines())))
    s.ctl("put", "still", "writable", timeout=30)
    separately = {}
    r = s.ctl("member", "update", new_id, f"--peer-urls=http://{new_peer},http://127.0.0.1:1",
              record=False)
    separately["member update"] = (r.rc, norm(r.out + r.err))
    r = s.ctl("member", "promote", new_id, record=False)
    separately["member promote (a voting member that never started)"] = (r.rc, norm(r.out + r.err))
    running_voter = s.ctl("endpoint", "status", "-w", "json", record=False)
    running_id = format(json.loads(running_voter.out)[0]["Status"]["header"]["member_id"], "x")
    r = s.ctl("member", "promote", running_id, record=False)
    separately["member promote (a running voting member)"] = (r.rc, norm(r.out + r.err).replace(running_id, "<ID>"))
    r = s.ctl("member", "remove", new_id, record=False)
    s.note("member remove", (r.rc, norm(r.out + r.err)))
    r = s.ctl("member", "remove", "abcdef", record=False)
    s.note("member remove unknown", (r.rc, norm(r.out + r.err)))
    learner_peer = new_peer.rsplit(":", 1)[0] + ":1"
    r = s.ctl("member", "add", "learner", f"--peer-urls=http://{learner_peer}", "--learner", record=False)
    separately["member add --learner"] = (r.rc, norm(r.out + r.err).replace(learner_peer, "<LEARNERPEER>"))
    if r.rc == 0:
        learner_id = r.out.split()[1]
        r = s.ctl("member", "list", record=False)
        separately["member list with a learner"] = (
            r.rc, sorted(norm(r.out + r.err).replace(learner_peer, "<LEARNERPEER>").splitlines()))
        r = s.ctl("member", "promote", learner_id, record=False)
        separately["member promote (learner not started)"] = (r.rc, norm(r.out + r.err))
        r = s.ctl("member", "remove", learner_id, record=False)
        separately["member remove learner"] = (r.rc, norm(r.out + r.err))
    r = s.ctl("member", "list", record=False)
    s.note("member list at the end", (r.rc, sorted(norm(r.out + r.err).splitlines())))
    s.ctl("get", "still", timeout=30)
    return separately


MEMBERSHIP_RESULTS: dict[str, dict] = {}


def test_cluster3_membership_changes(etcd_cluster3, raftkv_cluster3):
    from raftkv.cluster.local import free_ports
    a, b = sessions(etcd_cluster3, raftkv_cluster3)
    (port,) = free_ports(1)
    MEMBERSHIP_RESULTS["etcd"] = membership_changes(a, f"127.0.0.1:{port}")
    MEMBERSHIP_RESULTS["raftkv"] = membership_changes(b, f"127.0.0.1:{port}")
    compare(a, b)


def test_cluster3_member_update_promote_learner():
    """Results recorded by test_cluster3_membership_changes (same clusters):
    promote (of a voter that never started, of a learner not started) and
    learners answer as etcd does. `member update` is refused by design
    (README, "Differences from etcd"): a member's peer URL is its Raft identity."""
    if set(MEMBERSHIP_RESULTS) != {"etcd", "raftkv"}:
        pytest.skip("runs after test_cluster3_membership_changes")
    etcd, raftkv = dict(MEMBERSHIP_RESULTS["etcd"]), dict(MEMBERSHIP_RESULTS["raftkv"])
    assert etcd.pop("member update") == (0, "Member <ID1> updated in cluster <CLUSTER>\n")
    assert raftkv.pop("member update") == (1, "Error: rpc error: code = Unimplemented desc = raftkv: a member's "
                                              "peer URL is its Raft identity and cannot change; remove the "
                                              "member and add it again\n")
    assert etcd == raftkv, "\n".join(f"{k}:\n  etcd:   {etcd.get(k)}\n  raftkv: {raftkv.get(k)}"
                                     for k in etcd if etcd.get(k) != raftkv.get(k))


def test_client_status_counts_from_raftkv_and_none_from_etcd(etcd_cluster3, raftkv_cluster3):
    """raftkv.Client.status() takes the counts etcd's Status lacks from
    raftkv's Store service; etcd has no such service, so they stay unknown."""
    from raftkv.client.remote import Client

    with Client(etcd_cluster3.endpoints[:1], timeout=5) as c:
        status = c.status()
        assert (status.key_count, status.lease_count, status.watcher_count) == (-1, -1, -1)
        assert status.revision > 0 and status.member_id
    with Client(raftkv_cluster3.endpoints[:1], timeout=5) as c:
        status = c.status()
        assert min(status.key_count, status.lease_count, status.watcher_count, status.compact_revision) >= 0


def test_client_member_ids_are_the_servers_own(etcd_cluster3, raftkv_cluster3):
    """raftkv.Client reports each member with the ID the server gave it (etcd
    derives IDs differently from raftkv), so member_remove(m.id) finds it."""
    from raftkv.client.remote import Client

    for server in (etcd_cluster3, raftkv_cluster3):
        for ep in server.endpoints:
            with Client([ep], timeout=5) as c:
                own = c.status().member_id
                listed = {m.id: m for m in c.members()}
                assert own in listed, (server, ep, own, listed)
                assert any(ep.split("//")[-1] in url for url in listed[own].client_urls)


def test_cluster3_strict_reconfiguration_with_a_member_down(etcd_cluster3, raftkv_cluster3):
    """--strict-reconfig-check, as etcd does it, with a follower killed: adding a voting
    member or removing a live one is refused (the cluster would be one failure from losing
    its quorum); removing the dead one is allowed."""
    a, b = sessions(etcd_cluster3, raftkv_cluster3)
    from raftkv.cluster.local import free_ports

    (port,) = free_ports(1)
    for s in (a, b):
        names = {m["ID"]: m["name"] for m in s.ctl("member", "list", "-w", "json", record=False).json()["members"]}
        leader = leader_of(s)
        dead, live = next(i for i in range(3) if i != leader), leader
        ids = {names[m]: m for m in names}
        live_endpoints = [e for i, e in enumerate(s.server.endpoints) if i != dead]
        s.server.kill(dead)
        deadline = time.monotonic() + 20
        while True:  # until the survivors notice that the follower is gone
            r = s.ctl("member", "add", "m3", f"--peer-urls=http://127.0.0.1:{port}", endpoints=live_endpoints,
                      record=False)
            if "unhealthy cluster" in r.err or time.monotonic() > deadline:
                break
            assert r.rc != 0, r.out  # never added while the dead member counts as reachable
            time.sleep(0.5)
        s.note("member add with a follower down", (r.rc, s.norm(r.err)))
        r = s.ctl("member", "remove", f"{ids[f'm{live}']:x}", endpoints=live_endpoints, record=False)
        s.note("member remove of the live leader", (r.rc, s.norm(r.err)))
        r = s.ctl("member", "remove", f"{ids[f'm{dead}']:x}", endpoints=live_endpoints, record=False, timeout=30)
        s.note("member remove of the dead follower", (r.rc, s.norm(r.out + r.err)))
        r = s.ctl("member", "list", endpoints=live_endpoints, record=False)
        s.note("members left", len(r.out.splitlines()))
    compare(a, b)
