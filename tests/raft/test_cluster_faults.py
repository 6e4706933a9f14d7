"""Fault tests on real ``raftkv serve`` clusters on loopback.

kill -9 (leader, followers, everyone at once), SIGSTOP isolation, simulated
power loss (the fsync shadow of raftkv.raft.storage), snapshots with log
compaction, and leases across leader changes. Every wait is a bounded poll;
the few sleeps left are deliberate *timing* (e.g. letting a lease age, or
landing a kill inside an election), never synchronisation.
"""

from __future__ import annotations

import contextlib
import os
import random
import shutil
import threading
import time

import pytest

from raftkv.client.remote import Client
from raftkv.errors import Compacted, RaftKVError
from raftkv.mvcc.types import EventType
from raftkv.raft import storage

from fault_helpers import (  # tests/raft is on sys.path under pytest (rootdir-relative, no packages)
    FollowingWatch,
    Writer,
    assert_vote_audit,
    history,
    is_transient,
    kill_all,
    kv_state,
    pause,
    retry,
    start_all,
    wait_converged,
    wait_until,
)


def followers_of(cluster, leader: int) -> list[int]:
    return [i for i in range(len(cluster.members)) if i != leader]


def check_acked_present(client: Client, prefix: bytes, acked: dict[bytes, bytes]) -> dict:
    """Linearizable read of everything under prefix; every acked key must be there."""
    state = kv_state(retry(lambda: client.range(prefix, prefix=True), timeout=20,
                           what="linearizable range"))
    missing = sorted(k for k in acked if k not in state)
    wrong = sorted(k for k, v in acked.items() if k in state and state[k][0] != v)
    assert not missing, f"{len(missing)} of {len(acked)} acknowledged writes lost: {missing[:20]}"
    assert not wrong, f"acknowledged writes with other values: {wrong[:20]}"
    return state


# ---- 1. leader kill -9: availability and catch-up ---------------------------------------


@pytest.mark.timeout(90)
def test_leader_kill_keeps_cluster_available_and_killed_member_catches_up(make_cluster):
    cluster = make_cluster(3)
    writer = cluster.client(timeout=2.0)
    # the reader lists the endpoints the other way round: it reads through a
    # different member than the writer whenever it can (follower ReadIndex path)
    reader = Client(list(reversed(cluster.endpoints)), timeout=2.0)
    try:
        for i in range(10):
            retry(lambda: writer.put(f"/a/before{i}", f"b{i}"), timeout=10, what="put before")
        old = cluster.leader_index()
        cluster.kill(old)
        killed_at = time.monotonic()

        latest = None
        for i in range(30):
            key, value = f"/a/after{i:02d}".encode(), f"a{i}".encode()
            revision = retry(lambda: writer.put(key, value), timeout=15, what=f"put {key!r} after leader kill").revision
            got = retry(lambda: reader.get(key), timeout=15, what=f"linearizable get {key!r}")
            assert got is not None and got.value == value and got.mod_revision == revision, (key, got, revision)
            latest = (key, value, revision)
        new = cluster.leader_index(exclude={old})
        assert new != old
        assert time.monotonic() - killed_at < 30

        # the killed member restarts from its data dir and catches up
        cluster.start_member(old)
        cluster.wait_member(old)
        key, value = b"/a/latest", b"after-restart"
        revision = retry(lambda: writer.put(key, value), timeout=15, what="put latest").revision
        with Client([cluster.members[old].endpoint], timeout=2.0) as local:
            wait_until(lambda: (kv := local.get(key, serializable=True)) is not None
                       and kv.value == value and kv.mod_revision == revision,
                       timeout=20, what="restarted member's serializable read of the latest key")
            assert local.get(latest[0], serializable=True).value == latest[1]
            # and its whole state equals the cluster's
            expected = kv_state(retry(lambda: reader.range(b"/a/", prefix=True), timeout=10, what="range"))
            assert kv_state(local.range(b"/a/", prefix=True, serializable=True)) == expected
            assert len(expected) == 10 + 30 + 1
            # and it serves linearizable reads again
            assert retry(lambda: local.get(key), timeout=10, what="lin get on restarted").value == value
    finally:
        writer.close()
        reader.close()


# ---- 2. no acknowledged write lost across kill -9 ----------------------------------------


@pytest.mark.timeout(150)
def test_no_acknowledged_write_lost_across_kills_of_each_member_and_of_all(make_cluster):
    cluster = make_cluster(3)
    writer = Writer(cluster.endpoints, "/w/")
    writer.start()
    try:
        writer.wait_for(20)
        for i in range(len(cluster.members)):  # one at a time, the leader among them
            cluster.kill(i)
            writer.wait_for(writer.count + 15)  # two members still make progress
            cluster.start_member(i)
            cluster.wait_member(i)
            writer.wait_for(writer.count + 15)
        kill_all(cluster)
        start_all(cluster)
        writer.wait_for(writer.count + 20)
    finally:
        acked = writer.stop()
    assert not writer.unexpected, writer.unexpected[:5]
    with cluster.client() as client:
        state = check_acked_present(client, b"/w/", acked)
    revision, converged = wait_converged(cluster, b"/w/", timeout=30)
    assert converged == state


# ---- 3. votes: never two in one term, never two leaders in one term --------------------


@pytest.mark.timeout(150)
def test_restart_during_elections_never_votes_twice_in_a_term(make_cluster):
    rng = random.Random(int(os.environ.get("RAFTKV_TEST_SEED", time.time_ns())))
    cluster = make_cluster(3)
    writer = Writer(cluster.endpoints, "/v/")
    writer.start()
    try:
        writer.wait_for(10)
        for _ in range(6):
            leader = cluster.leader_index()
            follower = rng.choice(followers_of(cluster, leader))
            cluster.kill(leader)
            # land the follower's death somewhere inside the election that follows
            time.sleep(rng.uniform(0.0, 1.2))
            cluster.kill(follower)
            cluster.start_member(follower)
            time.sleep(rng.uniform(0.0, 0.6))
            cluster.start_member(leader)
            cluster.wait_ready()
            cluster.leader_index()
            writer.wait_for(writer.count + 5)
    finally:
        acked = writer.stop()
    assert not writer.unexpected, writer.unexpected[:5]
    with cluster.client() as client:
        check_acked_present(client, b"/v/", acked)
    assert_vote_audit(cluster, min_leader_terms=4)


# ---- 4. power loss -------------------------------------------------------------------


def shadow_env(tmp_path):
    return lambda i: {storage.SHADOW_ENV: str(tmp_path / f"shadow-m{i}")}


def power_loss(cluster, tmp_path) -> None:
    """kill -9 everyone, then put back only what each member had fsynced."""
    kill_all(cluster)
    for i, member in enumerate(cluster.members):
        storage.restore_shadow(member.data_dir, str(tmp_path / f"shadow-m{i}"))


@pytest.mark.timeout(150)
def test_power_loss_loses_no_acknowledged_write_and_no_vote(make_cluster, tmp_path):
    cluster = make_cluster(3, member_env=shadow_env(tmp_path))
    acked: dict[bytes, bytes] = {}
    for cycle in range(3):
        writer = Writer(cluster.endpoints, f"/p{cycle}/")
        writer.start()
        try:
            writer.wait_for(40)
            if cycle == 1:  # an election in between, with the writer running
                cluster.kill(cluster.leader_index())
                writer.wait_for(writer.count + 20)
            power_loss(cluster, tmp_path)  # while the writer is writing
        finally:
            acked.update(writer.stop())
        assert not writer.unexpected, writer.unexpected[:5]
        start_all(cluster)
        cluster.leader_index()
    with cluster.client() as client:
        state = check_acked_present(client, b"/p", acked)
    assert len(acked) >= 120
    _, converged = wait_converged(cluster, b"/p", timeout=30)
    assert converged == state
    assert_vote_audit(cluster, min_leader_terms=3)


# ---- 5. snapshots, log compaction, restarts --------------------------------------------

SNAPSHOT_ARGS = ["--snapshot-count", "50"]


def snapshot_path(cluster, i) -> str:
    return os.path.join(cluster.members[i].data_dir, "snapshot")


def write_history(client, prefix: str, count: int, rng: random.Random) -> list[int]:
    """count revisions of puts and deletes over a few keys; returns their revisions."""
    revisions = []
    for n in range(count):
        key = f"{prefix}k{rng.randrange(25):02d}"
        if n % 6 == 5:
            r = retry(lambda: client.delete(key), timeout=10, what="delete")
            if r.deleted == 0:  # not a new revision: put instead
                r = retry(lambda: client.put(key, f"r{n}"), timeout=10, what="put")
        else:
            r = retry(lambda: client.put(key, f"r{n}"), timeout=10, what="put")
        revisions.append(r.revision)
    return revisions


def views(client, prefix: bytes, revisions: list[int], *, serializable: bool) -> dict:
    return {r: kv_state(client.range(prefix, prefix=True, revision=r, serializable=serializable))
            for r in revisions}


@pytest.mark.timeout(150)
def test_snapshot_compaction_and_restart_keep_keys_revisions_and_history(make_cluster):
    rng = random.Random(5)
    cluster = make_cluster(3, extra_args=SNAPSHOT_ARGS)
    prefix = b"/s/"
    client = cluster.client(timeout=2.0)
    try:
        leader = cluster.leader_index()
        down, wiped = followers_of(cluster, leader)
        write_history(client, "/s/", 10, rng)
        assert not os.path.exists(snapshot_path(cluster, down)), "precondition: no snapshot yet"
        cluster.kill(down)  # it misses everything below, including the others' compactions

        revisions = write_history(client, "/s/", 150, rng)
        compact_at = revisions[40]
        retry(lambda: client.compact(compact_at), timeout=10, what="compact")
        revisions += write_history(client, "/s/", 150, rng)
        current = revisions[-1]
        past = sorted({compact_at, revisions[60], revisions[100], revisions[170], revisions[250], current - 1})
        for i in followers_of(cluster, down):
            wait_until(lambda: os.path.exists(snapshot_path(cluster, i)), timeout=20,
                       what=f"m{i} writes a snapshot")

        expected_now = kv_state(client.range(prefix, prefix=True))
        expected_past = views(client, prefix, past, serializable=False)
        expected_history = history(client, prefix, compact_at + 1, current)
        assert len(expected_history) == current - compact_at  # one event per revision here
        with pytest.raises(Compacted):
            client.range(prefix, prefix=True, revision=compact_at - 1)

        def check_member(i, what):
            with Client([cluster.members[i].endpoint], timeout=3.0) as local:
                assert views(local, prefix, past, serializable=True) == expected_past, what
                assert history(local, prefix, compact_at + 1, current) == expected_history, what
                with pytest.raises(Compacted):
                    local.range(prefix, prefix=True, revision=compact_at - 1, serializable=True)

        # the member that was down catches up, from a snapshot: the others' logs no longer reach back
        cluster.start_member(down)
        cluster.wait_member(down)
        wait_converged(cluster, prefix, expected_now, timeout=30)
        assert os.path.exists(snapshot_path(cluster, down)), \
            f"m{down} caught up without receiving a snapshot? {os.listdir(cluster.members[down].data_dir)}"
        check_member(down, "member that caught up from a snapshot")
        # once: the answers it gave before the snapshot arrived do not make the leader send it again
        with open(cluster.members[down].log_path) as f:
            installs = f.read().count("installed the leader's snapshot")
        assert 1 <= installs <= 2, f"m{down} installed the leader's snapshot {installs} times"

        # every member restarted: snapshot + remaining log give the same state and history
        kill_all(cluster)
        start_all(cluster)
        assert kv_state(retry(lambda: client.range(prefix, prefix=True), timeout=20, what="range")) == expected_now
        assert views(client, prefix, past, serializable=False) == expected_past
        wait_converged(cluster, prefix, expected_now, timeout=30)
        for i in range(3):
            check_member(i, f"m{i} after restarting every member")

        # a member whose data dir was wiped catches up too
        cluster.kill(wiped)
        shutil.rmtree(cluster.members[wiped].data_dir)
        cluster.start_member(wiped)
        cluster.wait_member(wiped)
        wait_converged(cluster, prefix, expected_now, timeout=30)
        check_member(wiped, "member with a wiped data dir")
        # and the cluster still takes writes that reach it
        r = retry(lambda: client.put(b"/s/after-wipe", b"1"), timeout=10, what="put").revision
        with Client([cluster.members[wiped].endpoint], timeout=2.0) as local:
            wait_until(lambda: (kv := local.get(b"/s/after-wipe", serializable=True)) is not None
                       and kv.mod_revision == r, timeout=20, what="wiped member applies new writes")
    finally:
        client.close()


# ---- 6. no stale reads on a member cut off from the others ------------------------------


def linearizable_outcome(local: Client, key: bytes):
    """('value', kv-or-None) or ('error', exception) of a linearizable get."""
    try:
        return "value", local.get(key)
    except RaftKVError as e:
        return "error", e


@pytest.mark.parametrize("role", ["leader", "follower"])
@pytest.mark.timeout(90)
def test_isolated_member_never_serves_stale_linearizable_reads(make_cluster, role):
    cluster = make_cluster(3)
    client = cluster.client(timeout=2.0)
    try:
        leader = cluster.leader_index()
        target = leader if role == "leader" else followers_of(cluster, leader)[0]
        others = followers_of(cluster, target)
        local = Client([cluster.members[target].endpoint], timeout=3.0)

        # (a) x=1 acknowledged and applied here; cut off, x=2 cannot commit, and a
        # linearizable read fails or returns x=1
        retry(lambda: client.put(b"x", b"1"), timeout=10, what="put x=1")
        wait_until(lambda: (kv := local.get(b"x", serializable=True)) is not None and kv.value == b"1",
                   timeout=10, what="x=1 applied on the target")
        for i in others:
            pause(cluster, i)
        try:
            with pytest.raises(RaftKVError) as refused:
                local.put(b"x", b"2")
            assert is_transient(refused.value), repr(refused.value)
            kind, got = linearizable_outcome(local, b"x")
            print(f"(a) isolated {role}: linearizable get x -> {kind} {got!r}")
            if kind == "error":
                assert is_transient(got), repr(got)
            else:
                assert got is not None and got.value == b"1", f"isolated {role} returned {got}"
        finally:
            for i in others:
                cluster.resume(i)

        # (b) the target falls behind while it is stopped, then is the only one
        # running: a linearizable read must not return what it has
        cluster.leader_index()
        pause(cluster, target)
        try:
            if role == "leader":
                cluster.leader_index(exclude={target})  # the others elect a new leader
            with Client([cluster.members[i].endpoint for i in others], timeout=2.0) as majority:
                fresh = retry(lambda: majority.put(b"y", b"fresh"), timeout=15, what="put y on the majority")
            for i in others:
                pause(cluster, i)
            cluster.resume(target)
            # a 3 s client deadline, then one longer than the member's own 5 s request
            # timeout, so the member's answer (typed error or value) is seen too
            for timeout in (3.0, 8.0):
                with Client([cluster.members[target].endpoint], timeout=timeout) as isolated:
                    kind, got = linearizable_outcome(isolated, b"y")
                print(f"(b) isolated former {role}, timeout {timeout}: linearizable get y -> {kind} {got!r}")
                if kind == "error":
                    assert is_transient(got), repr(got)
                else:
                    assert got is not None and got.value == b"fresh" and got.mod_revision == fresh.revision, \
                        f"stale linearizable read on the isolated former {role}: {got}"
        finally:
            for i in range(3):
                cluster.resume(i)
        local.close()
        # everyone agrees again afterwards
        cluster.leader_index()
        assert retry(lambda: client.get(b"y"), timeout=20, what="get y").value == b"fresh"
    finally:
        client.close()


# ---- 7. leases across a leader change -------------------------------------------------


@pytest.mark.timeout(90)
def test_lease_survives_leader_change_and_expires_exactly_once(make_cluster):
    ttl = 4
    cluster = make_cluster(3)
    client = cluster.client(timeout=2.0)
    key = b"/lease/key"
    try:
        leader = cluster.leader_index()
        lease = retry(lambda: client.lease(ttl), timeout=10, what="lease grant")
        put_revision = retry(lambda: client.put(key, b"v", lease=lease.id), timeout=10, what="put").revision
        # watched through the member about to be killed: the watch has to reconnect elsewhere
        watch = FollowingWatch(cluster, key, put_revision, prefer=leader)
        watch.start()
        wait_until(lambda: watch.seen(), timeout=10, what="watch sees the put")

        # let the lease age from a renewal (the setup above may have taken
        # most of its TTL on a busy machine), so that without an extension by
        # the new leader it would run out well within 2 s of the kill
        renewed = retry(lambda: client.lease_keep_alive(lease.id), timeout=10, what="keep-alive")
        assert renewed == ttl
        time.sleep(ttl - 1.5)
        killed_at = time.monotonic()
        cluster.kill(leader)

        samples = []  # (seconds after the kill, present?)
        while time.monotonic() - killed_at < ttl + 8:
            try:
                kv = client.get(key)
            except RaftKVError as e:
                if not is_transient(e):
                    raise
                continue
            samples.append((time.monotonic() - killed_at, kv is not None))
            if kv is None:
                break
            time.sleep(0.1)
        present = [t for t, p in samples if p]
        gone = [t for t, p in samples if not p]
        assert present and max(present) >= 2.0, \
            f"key gone before 2 s after the leader's kill (the new leader did not extend the lease): {samples[-5:]}"
        assert gone, f"key still there {ttl + 8}s after the kill: {samples[-3:]}"
        assert gone[0] <= ttl + 6, samples[-3:]
        assert retry(lambda: client.lease_time_to_live(lease.id), timeout=10, what="ttl").ttl == -1

        # the old leader comes back and catches up; nothing more happens to the key
        cluster.start_member(leader)
        cluster.wait_member(leader)
        marker = retry(lambda: client.put(b"/lease/marker", b"1"), timeout=10, what="put").revision
        wait_converged(cluster, b"/lease/", timeout=20)
        with Client([cluster.members[leader].endpoint], timeout=2.0) as old:
            assert old.get(key, serializable=True) is None
            replay = history(old, b"/lease/", put_revision, marker)
        events = watch.stop()
        assert watch.reconnects >= 1, "the watch never had to reconnect"
        deletes = [e for e in events if e.type == EventType.DELETE]
        assert len(deletes) == 1, f"{len(deletes)} DELETE events for the leased key: {events}"
        assert [e.type for e in events] == [EventType.PUT, EventType.DELETE], events
        assert [(t, k) for t, k, *_ in replay] == [(0, key), (1, key), (0, b"/lease/marker")], replay
    finally:
        client.close()


# ---- snapshots meet leases and power loss -----------------------------------------


@contextlib.contextmanager
def keeping_alive(cluster, lease_ids: list[int], every: float = 0.5):
    """Renew the leases (through a client of their own) while the block runs."""
    stop = threading.Event()
    keeper_client = cluster.client(timeout=2.0)

    def renew():
        while not stop.wait(every):
            for lease_id in lease_ids:
                try:
                    keeper_client.lease_keep_alive(lease_id)
                except RaftKVError:
                    pass  # a lost renewal: the next one comes within the TTL

    keeper = threading.Thread(target=renew, name="test-lease-keeper", daemon=True)
    keeper.start()
    try:
        yield
    finally:
        stop.set()
        keeper.join(timeout=10)
        keeper_client.close()


def wait_snapshot_after(cluster, since: float, timeout: float = 30.0) -> None:
    """Every member wrote a snapshot after ``since`` (time.time())."""
    def fresh():
        return all(os.path.exists(p) and os.path.getmtime(p) > since
                   for p in (snapshot_path(cluster, i) for i in range(len(cluster.members))))
    wait_until(fresh, timeout=timeout, what="every member writes a snapshot")


@pytest.mark.timeout(90)
def test_lease_restored_from_a_snapshot_expires_and_can_be_kept_alive(make_cluster):
    ttl = 4
    cluster = make_cluster(3, extra_args=SNAPSHOT_ARGS)
    client = cluster.client(timeout=2.0)
    try:
        expiring = retry(lambda: client.lease(ttl), timeout=10, what="grant")
        kept = retry(lambda: client.lease(ttl), timeout=10, what="grant")
        retry(lambda: client.put(b"/ls/expiring", b"1", lease=expiring.id), timeout=10, what="put")
        retry(lambda: client.put(b"/ls/kept", b"1", lease=kept.id), timeout=10, what="put")
        # on a busy machine the setup can outlast the TTL: both leases are kept
        # alive until the kill, so that what the restart restores is the question
        with keeping_alive(cluster, [expiring.id, kept.id]):
            for i in range(60):  # push the grants out of every member's log, into its snapshot
                retry(lambda: client.put(f"/ls/o{i}", b"x"), timeout=10, what="put")
            since = time.time()
            for i in range(60, 120):
                retry(lambda: client.put(f"/ls/o{i}", b"x"), timeout=10, what="put")
            wait_snapshot_after(cluster, since)
            assert client.get(b"/ls/expiring") is not None and client.get(b"/ls/kept") is not None

        kill_all(cluster)
        start_all(cluster)
        restarted_at = time.monotonic()
        info = retry(lambda: client.lease_time_to_live(kept.id), timeout=10, what="time to live")
        try:
            renewed = client.lease_keep_alive(kept.id)
        except RaftKVError as e:
            renewed = e

        def gone():
            return client.get(b"/ls/expiring") is None
        try:
            wait_until(gone, timeout=ttl + 6, what="key of the restored lease expires")
            expired_after = time.monotonic() - restarted_at
        except AssertionError:
            expired_after = None
        assert expired_after is not None, (
            f"a lease restored from a snapshot never expired (>{ttl + 6}s after the restart); "
            f"TimeToLive of another restored lease: {info}; its keep-alive: {renewed!r}")
        assert info.granted_ttl == ttl and 0 < info.ttl <= ttl, info
        assert renewed == ttl, f"keep-alive of a lease restored from a snapshot: {renewed!r}"
    finally:
        client.close()


@pytest.mark.timeout(120)
def test_power_loss_after_catching_up_from_a_snapshot(make_cluster, tmp_path):
    cluster = make_cluster(3, extra_args=SNAPSHOT_ARGS, member_env=shadow_env(tmp_path))
    client = cluster.client(timeout=2.0)
    prefix = b"/ps/"
    try:
        down = followers_of(cluster, cluster.leader_index())[0]
        for i in range(5):
            retry(lambda: client.put(f"/ps/a{i}", b"x"), timeout=10, what="put")
        cluster.kill(down)
        for i in range(200):
            retry(lambda: client.put(f"/ps/b{i}", b"x"), timeout=10, what="put")
        expected = kv_state(client.range(prefix, prefix=True))
        cluster.start_member(down)
        cluster.wait_member(down)
        wait_converged(cluster, prefix, expected, timeout=30)
        assert os.path.exists(snapshot_path(cluster, down)), "precondition: it caught up from a snapshot"

        power_loss(cluster, tmp_path)
        start_all(cluster)
        wait_converged(cluster, prefix, expected, timeout=12)
        retry(lambda: client.put(b"/ps/after", b"1"), timeout=15, what="put after the power loss")
    finally:
        client.close()


# ---- the log audit itself --------------------------------------------------------------


def test_vote_audit_catches_double_votes_term_regressions_and_two_leaders(tmp_path):
    """The audit of test 3/4 must be able to fail: fed member logs that break
    each rule, it reports each break (no cluster needed)."""
    from types import SimpleNamespace

    def fake_cluster(logs: dict[str, list[str]]):
        members = []
        for name, lines in logs.items():
            path = tmp_path / f"{name}-{len(lines)}-{abs(hash(tuple(lines)))}.log"
            path.write_text("".join(f"2026-01-01 00:00:00,000 INFO x {line}\n" for line in lines))
            members.append(SimpleNamespace(name=name, log_path=str(path)))
        return SimpleNamespace(members=members)

    from fault_helpers import audit_logs

    good = fake_cluster({
        "m0": ["term persisted term=1 voted_for=a", "became leader term=1", "serving name=m0",
               "term persisted term=2 voted_for=None", "term persisted term=2 voted_for=b"],
        "m1": ["term persisted term=1 voted_for=a", "term persisted term=2 voted_for=b", "became leader term=2"],
    })
    audit = audit_logs(good)
    assert not audit["double_votes"] and not audit["two_leaders"] and not audit["term_regressions"]
    assert audit["leaders"] == {1: {"m0"}, 2: {"m1"}}

    # a restart that forgot its vote: a second, different vote in term 3
    bad = audit_logs(fake_cluster({"m0": [
        "term persisted term=3 voted_for=a", "serving name=m0", "term persisted term=3 voted_for=b"]}))
    assert bad["double_votes"] and "term 3" in bad["double_votes"][0]
    # a restart that forgot its term
    assert audit_logs(fake_cluster({"m0": [
        "term persisted term=5 voted_for=None", "serving name=m0", "term persisted term=4 voted_for=None"]})
    )["term_regressions"]
    # two members leading the same term
    assert audit_logs(fake_cluster({"m0": ["became leader term=7"], "m1": ["became leader term=7"]})
                      )["two_leaders"] == ["term 7: ['m0', 'm1']"]
