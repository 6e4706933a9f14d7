"""When a member snapshots: besides etcd's entry count, once its log outgrows
a size, so that a restart replays little and the log's entries held in
memory stay bounded. A restart then loads the snapshot and replays the rest."""

from __future__ import annotations

import os
import time

import pytest

from raftkv.addresses import free_ports
from raftkv.client.node import Node
from raftkv.raft.log_segments import segment_paths
from raftkv.raft.member import MemberConfig

pytestmark = pytest.mark.timeout(120)

FAST = dict(election_timeout_min=0.1, election_timeout_max=0.2, heartbeat_interval=0.02)


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_log_grown_past_its_size_is_snapshotted_and_restarts_from_snapshot_and_log(tmp_path):
    (port,) = free_ports(1)
    address = f"127.0.0.1:{port}"
    data = str(tmp_path / "m")
    config = MemberConfig(snapshot_log_bytes=200_000, log_segment_bytes=50_000, **FAST)  # entries: far from the 100,000 of etcd's count
    snapshot = os.path.join(data, "snapshot")
    node = Node(address, [address], data, config)
    try:
        wait_for(lambda: node.member.is_leader, 10, "a leader")
        value = b"v" * 2000
        for i in range(60):  # 120 KB of values: under the size
            node.put(b"k%03d" % i, value)
        time.sleep(0.5)
        assert not os.path.exists(snapshot)
        for i in range(60, 150):  # 300 KB: over it
            node.put(b"k%03d" % i, value)
        wait_for(lambda: os.path.exists(snapshot), 20, "a snapshot once the log outgrew its size")
        wait_for(lambda: sum(map(os.path.getsize, segment_paths(os.path.join(data, "raft.log")))) < 200_000,
                 20, "the log trimmed")
        for i in range(150, 160):  # after the snapshot: the log holds them
            node.put(b"k%03d" % i, value)
        revision = node.status().revision
    finally:
        node.close()
    node = Node(address, [address], data, config)
    try:
        wait_for(lambda: node.member.is_leader, 10, "a leader after the restart")
        got = node.range(b"k", prefix=True)
        assert len(got.kvs) == 160 and all(kv.value == value for kv in got.kvs)
        assert node.status().revision == revision
    finally:
        node.close()
