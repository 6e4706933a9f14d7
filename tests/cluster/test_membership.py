"""Membership at runtime on real member processes: list, add, remove; peer secrets."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from raftkv.cluster.local import LocalCluster, free_ports
from raftkv.errors import MemberNotFound, PeerURLExists, RaftKVError
from raftkv.raft.membership import member_id

pytestmark = pytest.mark.timeout(120)


def wait_for(predicate, timeout=20.0, interval=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met in {timeout}s")


@pytest.fixture
def cluster(tmp_path):
    with LocalCluster(3, str(tmp_path / "c")) as c:
        c.start()
        yield c


def names(client):
    return sorted(m.name for m in client.members())


def test_member_list_shows_every_member_with_its_name_and_urls(cluster):
    client = cluster.client()
    members = wait_for(lambda: len([m for m in client.members() if m.name]) == 3 and client.members())
    assert sorted(m.name for m in members) == ["m0", "m1", "m2"]
    for m in members:
        process = next(p for p in cluster.members if p.name == m.name)
        assert m.peer_urls == [process.peer_url]
        assert m.client_urls == [f"http://{process.endpoint}"]
        assert m.id == member_id(f"127.0.0.1:{process.peer_port}")


def test_describe_says_what_each_member_reports_and_logged(cluster):
    """The failure message of cluster tests: each member's view and its Raft events."""
    leader = cluster.leader_index()
    cluster.kill(next(i for i in range(3) if i != leader))
    text = cluster.describe()
    leader_id = cluster.member_status(leader).member_id
    assert text.count(f"leader={leader_id:x}") == 2
    assert "running=False no status" in text
    assert "became leader term=" in text


def test_added_member_catches_up_and_removed_member_is_gone(cluster, tmp_path):
    client = cluster.client()
    client.put("before", "1")
    client_port, peer_port = free_ports(2)
    peer_url = f"http://127.0.0.1:{peer_port}"
    added = client.member_add([peer_url])
    assert added.peer_urls == [peer_url]
    with pytest.raises(PeerURLExists):
        client.member_add([peer_url])
    listed = {m.id: m for m in client.members()}
    assert added.id in listed and listed[added.id].name == ""  # not started yet, as etcd shows it

    log = open(tmp_path / "m3.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "raftkv", "serve", "--name", "m3", "--data-dir", str(tmp_path / "m3"),
         "--listen-client-urls", f"http://127.0.0.1:{client_port}", "--listen-peer-urls", peer_url,
         "--initial-cluster", cluster.initial_cluster + f",m3={peer_url}",
         "--initial-cluster-state", "existing"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        from raftkv.client.remote import Client

        with Client([f"127.0.0.1:{client_port}"], timeout=2) as newcomer:
            def caught_up():
                try:
                    kv = newcomer.get("before", serializable=True)
                except Exception:
                    return None
                return kv
            assert wait_for(caught_up).value == b"1"
            client.put("after", "2")
            assert newcomer.get("after").value == b"2"  # linearizable read on the new member
        assert "m3" in wait_for(lambda: "m3" in names(client) and names(client))

        client.member_remove(added.id)
        assert [m for m in client.members() if m.id == added.id] == []
        process.wait(timeout=20)  # the removed member is told, and stops, as etcd's does
        with pytest.raises(MemberNotFound):
            client.member_remove(added.id)
        client.put("still", "writable")
        assert client.get("still").value == b"writable"
    finally:
        process.kill()
        process.wait(timeout=10)
        log.close()


def test_removing_the_leader_moves_leadership_first(cluster):
    client = cluster.client()
    leader = cluster.leader_index()
    leader_id = member_id(f"127.0.0.1:{cluster.members[leader].peer_port}")
    client.member_remove(leader_id)
    remaining = [i for i in range(3) if i != leader]
    assert sorted(m.id for m in cluster.client(remaining[0]).members()) == sorted(
        member_id(f"127.0.0.1:{cluster.members[i].peer_port}") for i in remaining)
    # the removed leader stops by itself, and the two others keep serving
    wait_for(lambda: not cluster.members[leader].running)
    put_through_two(cluster, remaining[0], "k", "v")
    assert cluster.client(remaining[1]).get("k").value == b"v"


def test_a_member_without_the_peer_secret_cannot_join(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("correct horse battery staple\n")
    with LocalCluster(3, str(tmp_path / "c"), extra_args=["--peer-secret-file", str(secret)]) as c:
        c.start()
        client = c.client()
        client.put("a", "1")
        outsider = next(i for i in range(3) if i != c.leader_index())
        c.kill(outsider)
        secret_args, c.extra_args = c.extra_args, []
        c.start_member(outsider)
        time.sleep(3)  # several election timeouts
        status = c.member_status(outsider)
        assert status.leader == 0  # it found no leader: its peers cannot understand it
        with pytest.raises(Exception):
            c.client(outsider, timeout=2).get("a")
        # the two members with the secret still form a majority
        others = [i for i in range(3) if i != outsider]
        put_through_two(c, others[0], "b", "2")
        assert c.client(others[1]).get("b").value == b"2"
        c.kill(outsider)
        c.extra_args = secret_args
        c.start_member(outsider)
        assert wait_for(lambda: _get_serializable(c, outsider, "b")) == b"2"


def put_through_two(cluster, index, key, value, seconds=30.0):
    """A put when only two voters are up, so each write needs both of them:
    a disk stall on either holds it up, and one that outlasts the request
    timeout (5 s, as etcd's) fails the write. With two test suites on one
    disk, a probe measured fsyncs of 1.2-3.3 s in their last minutes, so the
    put is retried as an etcd client would be, and only a majority
    unwritable for ``seconds`` fails the test."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return cluster.client(index).put(key, value)
        except RaftKVError as e:
            if time.monotonic() > deadline:
                pytest.fail(f"no put through the two voters for {seconds:g}s: {e}\n{cluster.describe()}")
            time.sleep(0.2)


def _get_serializable(cluster, index, key):
    try:
        kv = cluster.client(index, timeout=1).get(key, serializable=True)
    except Exception:
        return None
    return kv.value if kv else None


def test_a_learner_follows_without_voting_and_is_promoted(cluster, tmp_path):
    from raftkv.client.remote import Client
    from raftkv.errors import NotSupportedForLearner

    client = cluster.client()
    client.put("x", "1")
    client_port, peer_port = free_ports(2)
    peer_url = f"http://127.0.0.1:{peer_port}"
    added = client.member_add([peer_url], is_learner=True)
    assert added.is_learner
    log = open(tmp_path / "learner.log", "wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "raftkv", "serve", "--name", "L", "--data-dir", str(tmp_path / "L"),
         "--listen-client-urls", f"http://127.0.0.1:{client_port}", "--listen-peer-urls", peer_url,
         "--initial-cluster", cluster.initial_cluster + f",L={peer_url}",
         "--initial-cluster-state", "existing"],
        stdout=log, stderr=subprocess.STDOUT)
    try:
        with Client([f"127.0.0.1:{client_port}"], timeout=3) as learner:
            assert wait_for(lambda: _serializable(learner, "x")) == b"1"
            listed = {m.id: m for m in client.members()}
            assert listed[added.id].is_learner and listed[added.id].name == "L"
            with pytest.raises(NotSupportedForLearner):
                learner.put("y", "2")
            # three voters still decide alone: losing one of them keeps the cluster writable
            cluster.kill(next(i for i in range(3) if i != cluster.leader_index()))
            client.put("z", "3")
            assert wait_for(lambda: _serializable(learner, "z")) == b"3"

            client.member_promote(added.id)
            assert not {m.id: m for m in client.members()}[added.id].is_learner
            def writable():
                try:
                    return learner.put("y", "2").revision
                except Exception:
                    return None
            assert wait_for(writable, timeout=30)
            assert client.get("y").value == b"2"
    finally:
        process.kill()
        process.wait(timeout=10)
        log.close()


def _serializable(client, key):
    try:
        kv = client.get(key, serializable=True)
    except Exception:
        return None
    return kv.value if kv else None


def test_a_started_member_is_not_removed_while_too_few_would_be_left_started(tmp_path):
    """--strict-reconfig-check: with a voter added that never started, removing a started
    one would leave a quorum that cannot be met; removing the one that never started can go."""
    from raftkv.errors import NotEnoughStartedMembers

    with LocalCluster(2, str(tmp_path / "two")) as c:
        c.start()
        (port,) = free_ports(1)
        with c.client() as client:
            added = client.member_add([f"http://127.0.0.1:{port}"])
            started = [m for m in client.members() if m.name]
            assert len(started) == 2
            with pytest.raises(NotEnoughStartedMembers, match="not enough started members"):
                client.member_remove(started[0].id)
            client.member_remove(member_id(added.address))
            assert sorted(m.name for m in client.members()) == sorted(m.name for m in started)
