"""A member killed at each crash point (RAFTKV_FAILPOINTS) loses no acknowledged write.

For every point: one member of three is armed, writers run against all of
them until that member kills itself there (exit by SIGKILL), it restarts
without the failpoint, and then every member holds every acknowledged
write, the same keys at the same revision, and the same HashKV.
"""

from __future__ import annotations

import signal

import pytest

from fault_helpers import Writer, hash_kv, retry, wait_converged, wait_until
from raftkv.client.remote import Client
from raftkv.errors import PeerURLExists
from raftkv.raft.failpoints import POINTS, parse_setting

pytestmark = pytest.mark.timeout(240)

SNAPSHOTS = ["--snapshot-count", "60"]


def run_until_dead(cluster, index: int, writers: list[Writer], timeout: float = 60.0) -> None:
    member = cluster.members[index]
    wait_until(lambda: member.process.poll() is not None, timeout=timeout,
               what=f"{member.name} reaches its failpoint",
               describe=lambda: [w.count for w in writers])
    assert member.process.returncode == -signal.SIGKILL, member.process.returncode
    assert "failpoint reached" in open(member.log_path, errors="replace").read()


def restart_clean(cluster, index: int) -> None:
    member = cluster.members[index]
    member.extra_env.pop("RAFTKV_FAILPOINTS", None)
    cluster.start_member(index)
    cluster.wait_member(index, timeout=30)


def check_everything_is_there(cluster, acked: dict[bytes, bytes]) -> None:
    revision, state = wait_converged(cluster, b"w", timeout=40)
    missing = {k for k in acked if k not in state or state[k][0] != acked[k]}
    assert not missing, f"{len(missing)} acknowledged writes lost, e.g. {sorted(missing)[:5]}"
    hashes = {hash_kv(m.endpoint, revision)[1] for m in cluster.members}
    assert len(hashes) == 1, hashes


def writers_for(cluster, count: int = 3) -> list[Writer]:
    writers = [Writer(cluster.endpoints, f"w{i}-") for i in range(count)]
    for w in writers:
        w.start()
    return writers


def stop(writers: list[Writer]) -> dict[bytes, bytes]:
    acked: dict[bytes, bytes] = {}
    for w in writers:
        acked.update(w.stop())
    return acked


@pytest.mark.parametrize("point", [
    "journal-before-write:20", "journal-before-sync:20", "journal-after-sync:20",
    "apply-before-response:50", "snapshot-mid-write", "snapshot-before-install", "snapshot-before-trim",
])
def test_a_member_killed_at_a_point_of_its_own_loses_nothing(make_cluster, point):
    """Every member passes these points, leader or not: member 0 is armed."""
    cluster = make_cluster(3, extra_args=SNAPSHOTS,
                           member_env=lambda i: {"RAFTKV_FAILPOINTS": point} if i == 0 else {})
    writers = writers_for(cluster)
    run_until_dead(cluster, 0, writers)
    for w in writers:  # the others go on meanwhile
        w.wait_for(w.count + 10)
    restart_clean(cluster, 0)
    for w in writers:
        w.wait_for(w.count + 20)
    check_everything_is_there(cluster, stop(writers))


@pytest.mark.parametrize("point", ["received-snapshot-loading", "received-snapshot-before-install",
                                   "received-snapshot-before-trim"])
def test_a_member_killed_while_installing_a_snapshot_loses_nothing(make_cluster, point):
    cluster = make_cluster(3, extra_args=SNAPSHOTS)
    lagging = next(i for i in range(3) if i != cluster.leader_index())
    cluster.kill(lagging)
    writers = writers_for(cluster)
    for w in writers:
        w.wait_for(150)  # several snapshots: the lagging member gets one
    cluster.members[lagging].extra_env["RAFTKV_FAILPOINTS"] = point
    cluster.start_member(lagging)
    run_until_dead(cluster, lagging, writers)
    restart_clean(cluster, lagging)
    for w in writers:
        w.wait_for(w.count + 20)
    check_everything_is_there(cluster, stop(writers))


def test_a_member_loading_a_snapshot_keeps_following_its_leader(make_cluster):
    """The received snapshot's state is built off the tick: for the two
    seconds the failpoint makes loading last (more than twice the election
    timeout) the member hears its leader, so it starts no election."""
    cluster = make_cluster(3, extra_args=SNAPSHOTS)
    leader = cluster.leader_index()
    lagging = next(i for i in range(3) if i != leader)
    cluster.kill(lagging)
    writers = writers_for(cluster)
    for w in writers:
        w.wait_for(150)  # several snapshots: the lagging member gets one
    acked = stop(writers)
    member = cluster.members[lagging]
    member.extra_env["RAFTKV_FAILPOINTS"] = "received-snapshot-loading=sleep(2000)"
    cluster.start_member(lagging)

    def logged(text: str) -> bool:
        return text in open(member.log_path, errors="replace").read()

    with Client([cluster.members[leader].endpoint], timeout=5) as client:
        wait_until(lambda: logged("sleeping name=received-snapshot-loading"), timeout=30,
                   what=f"{member.name} loads the leader's snapshot")
        before = client.status()
        wait_until(lambda: logged("installed the leader's snapshot"), timeout=30,
                   what=f"{member.name} installs the snapshot")
        after = client.status()
    assert (after.leader, after.raft_term) == (before.leader, before.raft_term)
    check_everything_is_there(cluster, acked)


def test_a_member_killed_during_a_membership_change_loses_nothing(make_cluster):
    cluster = make_cluster(3)
    follower = next(i for i in range(3) if i != cluster.leader_index())
    cluster.members[follower].extra_env["RAFTKV_FAILPOINTS"] = "membership-change"
    cluster.kill(follower)
    cluster.start_member(follower)
    cluster.wait_ready()
    writers = writers_for(cluster)
    new = cluster.new_member()
    client = Client(cluster.endpoints[:3], timeout=10)

    def add() -> None:
        try:
            client.member_add([new.peer_url])
        except PeerURLExists:  # an earlier try went through after all
            pass

    retry(add, timeout=30, what="member add")
    run_until_dead(cluster, follower, writers)
    cluster.start_member(len(cluster.members) - 1)
    restart_clean(cluster, follower)
    cluster.wait_member(len(cluster.members) - 1, timeout=30)
    for w in writers:
        w.wait_for(w.count + 20)
    assert len(client.members()) == 4
    client.close()
    check_everything_is_there(cluster, stop(writers))


def test_every_point_is_tested():
    tested = {"journal-before-write", "journal-before-sync", "journal-after-sync", "apply-before-response",
              "snapshot-mid-write", "snapshot-before-install", "snapshot-before-trim", "received-snapshot-loading",
              "received-snapshot-before-install", "received-snapshot-before-trim", "membership-change"}
    assert tested == POINTS


def test_the_setting_names_points_that_kill_and_points_that_sleep():
    assert parse_setting("journal-after-sync=sleep(250), snapshot-mid-write:2, membership-change") == (
        {"snapshot-mid-write": 2, "membership-change": 1}, {"journal-after-sync": 0.25})
    with pytest.raises(ValueError, match="unknown failpoint 'no-such-point'"):
        parse_setting("no-such-point=sleep(1)")
    with pytest.raises(ValueError, match=r"unknown action 'panic' of 'journal-after-sync' \(known: sleep\(MS\)\)"):
        parse_setting("journal-after-sync=panic")


def test_a_slow_tick_is_logged_with_what_took_the_time(make_cluster):
    """etcd warns when applying takes too long; a member warns when its
    Raft tick held up heartbeats and proposals past 100 ms."""
    cluster = make_cluster(1, env={"RAFTKV_FAILPOINTS": "journal-before-sync=sleep(300)"})
    cluster.leader_index()
    with Client(cluster.endpoints, timeout=10) as client:
        client.put(b"k", b"v")
    log_text = open(cluster.members[0].log_path, errors="replace").read()
    slow = [line for line in log_text.splitlines() if "slow raft tick" in line]
    assert slow, "no slow tick logged"
    assert any(int(line.split("work_ms=")[1].split()[0]) >= 300 for line in slow), slow[-3:]
