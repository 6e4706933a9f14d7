"""Members that listen for peers on one port and advertise another, as etcd
allows (--listen-peer-urls vs --initial-advertise-peer-urls): here the
benchmark's peer proxy listens on every advertised port and forwards to the
member's own, so the cluster only works if each member binds its listen URL
and is known to the others by its advertised one."""

from __future__ import annotations

import time

import pytest

from bench.proxy import PartitionProxy, socket_inode
from raftkv.cluster.local import LocalCluster
from raftkv.raft.membership import member_id

pytestmark = pytest.mark.timeout(90)


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met in {timeout}s")


def listening_inode(port: int) -> int | None:
    return socket_inode(("127.0.0.1", port), ("0.0.0.0", 0))


@pytest.fixture
def cluster(tmp_path):
    with LocalCluster(3, str(tmp_path / "c"), peer_proxy=PartitionProxy()) as c:
        c.start()
        yield c


def test_members_listen_on_one_port_and_advertise_another(cluster):
    for m in cluster.members:
        assert m.listen_peer_port not in (None, m.peer_port)
        assert listening_inode(m.listen_peer_port) is not None  # the member's own socket
    client = cluster.client()
    for i in range(20):
        client.put(f"k{i}", str(i))
    assert client.get("k19").value == b"19"
    members = wait_for(lambda: len([m for m in client.members() if m.name]) == 3 and client.members())
    by_name = {m.name: m for m in members}
    for process in cluster.members:
        m = by_name[process.name]
        assert m.peer_urls == [process.peer_url]  # the advertised URL, not the listen one
        assert m.id == member_id(f"127.0.0.1:{process.peer_port}")
    assert cluster.peer_proxy.stats["unknown_sources"] == 0  # every peer connection was attributed


def test_restarted_leader_and_added_member_go_through_the_proxy(cluster):
    client = cluster.client()
    client.put("before", "1")
    leader = cluster.leader_index()
    cluster.kill(leader)
    cluster.leader_index(exclude={leader})
    cluster.start_member(leader)  # a new process the proxy must recognise
    cluster.wait_member(leader)
    client.put("after-restart", "2")

    new = cluster.new_member()
    assert new.listen_peer_port not in (None, new.peer_port)
    client.member_add([new.peer_url])
    cluster.start_member(len(cluster.members) - 1)
    with cluster.client(len(cluster.members) - 1, timeout=2) as newcomer:
        def caught_up():
            try:
                return newcomer.get("after-restart", serializable=True)
            except Exception:  # noqa: BLE001 - not serving yet
                return None
        assert wait_for(caught_up, timeout=30).value == b"2"
    assert cluster.peer_proxy.stats["unknown_sources"] == 0
