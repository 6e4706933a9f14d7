"""A member on real processes refuses data it cannot vouch for, and still repairs a torn tail.

Bit rot in the middle of the log, a damaged term/vote record, another
member's data directory: the member exits at once with an error that names
the file (and the offset) and says how to recover, instead of serving.
A torn last write (what a crash leaves) is cut and the member serves on.
"""

from __future__ import annotations

import os
import shutil
import signal
import time

import pytest

from fault_helpers import retry

from raftkv.raft.log_segments import segment_paths

pytestmark = pytest.mark.timeout(180)


def write_keys(cluster, count: int) -> None:
    client = cluster.client()
    for i in range(count):
        retry(lambda i=i: client.put(f"key{i:04d}", f"value{i}" * 20), timeout=20, what="put")


def stop_cleanly(cluster, index: int = 0) -> None:
    process = cluster.members[index].process
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=20)


def start_expecting_refusal(cluster, index: int = 0, timeout: float = 20.0) -> str:
    member = cluster.members[index]
    cluster.start_member(index)
    deadline = time.monotonic() + timeout
    while member.process.poll() is None:
        assert time.monotonic() < deadline, f"{member.name} did not refuse to start"
        time.sleep(0.1)
    assert member.process.returncode != 0
    return open(member.log_path, errors="replace").read()


def test_a_flipped_byte_in_the_middle_of_the_log_is_refused(make_cluster):
    cluster = make_cluster(1)
    write_keys(cluster, 200)
    stop_cleanly(cluster)
    path = segment_paths(os.path.join(cluster.members[0].data_dir, "raft.log"))[-1]
    data = bytearray(open(path, "rb").read())
    offset = len(data) // 2
    data[offset] ^= 0x04
    open(path, "wb").write(bytes(data))
    output = start_expecting_refusal(cluster)
    assert path in output and "byte" in output and "member remove" in output
    assert os.path.getsize(path) == len(data)  # nothing was cut


def test_a_torn_last_write_is_cut_and_the_member_serves_on(make_cluster):
    cluster = make_cluster(1)
    write_keys(cluster, 100)
    cluster.kill(0)
    path = segment_paths(os.path.join(cluster.members[0].data_dir, "raft.log"))[-1]
    with open(path, "ab") as f:  # the start of a record that a crash interrupted
        f.write(b"\x40\x00\x00\x00\x07\x00\x00\x00" + b"partial")
    cluster.start_member(0)
    cluster.wait_member(0)
    client = cluster.client()
    assert retry(lambda: client.get("key0099"), timeout=20, what="get").value == b"value99" * 20
    assert "log tail cut" in open(cluster.members[0].log_path).read()


def test_a_damaged_term_record_is_refused(make_cluster):
    cluster = make_cluster(1)
    write_keys(cluster, 10)
    stop_cleanly(cluster)
    meta = os.path.join(cluster.members[0].data_dir, "raft.log.meta")
    text = open(meta).read()
    open(meta, "w").write(text.replace('"voted_for"', '"voted_For"'))
    output = start_expecting_refusal(cluster)
    assert meta in output and "checksum" in output


def test_another_members_data_directory_is_refused(make_cluster):
    cluster = make_cluster(3)
    write_keys(cluster, 10)
    for i in range(3):
        stop_cleanly(cluster, i)
    a, b = cluster.members[0].data_dir, cluster.members[1].data_dir
    shutil.rmtree(b)
    shutil.copytree(a, b)
    output = start_expecting_refusal(cluster, 1)
    assert "holds the data of the member at" in output and f"127.0.0.1:{cluster.members[0].peer_port}" in output
