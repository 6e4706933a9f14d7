"""Maintenance: Hash, HashKV, Snapshot, Alarm, Defragment, MoveLeader against
real ``raftkv serve`` processes, through gRPC and through etcdctl."""

from __future__ import annotations

import grpc
import pytest

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv.server import snapshot

from server_helpers import ETCDCTL_MISSING, HAVE_ETCDCTL, etcdctl, serves, wait_until

needs_etcdctl = pytest.mark.skipif(not HAVE_ETCDCTL, reason=ETCDCTL_MISSING)

COMPACTED = "etcdserver: mvcc: required revision has been compacted"
FUTURE = "etcdserver: mvcc: required revision is a future revision"


def put(channel, key: bytes, value: bytes = b"v") -> int:
    return rpc_pb2_grpc.KVStub(channel).Put(rpc_pb2.PutRequest(key=key, value=value), timeout=10).header.revision


def rpc_error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


# ---- one member ----------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_hashkv_at_a_revision_is_stable_and_checked(channel):
    maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
    revision = put(channel, b"hash/a", b"1")
    put(channel, b"hash/b", b"2")
    at = maintenance.HashKV(rpc_pb2.HashKVRequest(revision=revision), timeout=10)
    current = maintenance.HashKV(rpc_pb2.HashKVRequest(), timeout=10)
    assert current.header.revision == revision + 1
    assert at.header.revision == revision + 1  # the header tells the current revision
    assert current.hash != at.hash
    assert at.header.cluster_id and at.header.member_id and at.header.raft_term

    later = put(channel, b"hash/a", b"3")
    again = maintenance.HashKV(rpc_pb2.HashKVRequest(revision=revision), timeout=10)
    assert again.hash == at.hash
    assert again.header.revision == later

    error = rpc_error(lambda: maintenance.HashKV(rpc_pb2.HashKVRequest(revision=later + 100), timeout=10))
    assert (error.code(), error.details()) == (grpc.StatusCode.OUT_OF_RANGE, FUTURE)

    whole = maintenance.Hash(rpc_pb2.HashRequest(), timeout=10)
    assert whole.header.revision == later
    assert maintenance.Hash(rpc_pb2.HashRequest(), timeout=10).hash == whole.hash


@pytest.mark.timeout(60)
def test_hashkv_after_compaction(channel):
    maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
    first = put(channel, b"compact/a")
    second = put(channel, b"compact/a", b"w")
    rpc_pb2_grpc.KVStub(channel).Compact(rpc_pb2.CompactionRequest(revision=second), timeout=10)
    for revision in (first, second):
        error = rpc_error(lambda: maintenance.HashKV(rpc_pb2.HashKVRequest(revision=revision), timeout=10))
        assert (error.code(), error.details()) == (grpc.StatusCode.OUT_OF_RANGE, COMPACTED)
    third = put(channel, b"compact/b")
    response = maintenance.HashKV(rpc_pb2.HashKVRequest(revision=third), timeout=10)
    assert response.compact_revision == second


@needs_etcdctl
@pytest.mark.timeout(60)
def test_etcdctl_snapshot_save_writes_a_consistent_file(member, channel, tmp_path):
    lease = rpc_pb2_grpc.LeaseStub(channel).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=300), timeout=10)
    for batch in range(3):  # more than one 32 KiB chunk
        rpc_pb2_grpc.KVStub(channel).Txn(rpc_pb2.TxnRequest(success=[
            rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"snap/%03d" % i, value=bytes([i % 256]) * 200))
            for i in range(batch * 100, batch * 100 + 100)]), timeout=10)
    rpc_pb2_grpc.KVStub(channel).Put(rpc_pb2.PutRequest(key=b"snap/leased", value=b"x", lease=lease.ID),
                                     timeout=10)
    revision = put(channel, b"snap/last")
    path = tmp_path / "snap.db"
    result = etcdctl(member.endpoint, "snapshot", "save", str(path))
    assert f"Snapshot saved at {path}" in result.stdout
    state = snapshot.read_snapshot(path.read_bytes())
    assert state.revision >= revision
    kvs = {kv.key: kv for kv in state.kvs}
    assert kvs[b"snap/007"].value == bytes([7]) * 200 and len(kvs) >= 302
    assert kvs[b"snap/leased"].lease == lease.ID
    assert (lease.ID, 300, [b"snap/leased"]) in state.leases
    assert [kv.key for kv in state.kvs] == sorted(kvs)
    # the file holds exactly what a range at its revision returns
    live = rpc_pb2_grpc.KVStub(channel).Range(
        rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0", revision=state.revision), timeout=10)
    assert [(kv.key, kv.value, kv.mod_revision) for kv in live.kvs] == \
        [(kv.key, kv.value, kv.mod_revision) for kv in state.kvs]


@pytest.mark.timeout(60)
def test_snapshot_stream_shape(channel):
    pieces = list(rpc_pb2_grpc.MaintenanceStub(channel).Snapshot(rpc_pb2.SnapshotRequest(), timeout=10))
    data = b"".join(p.blob for p in pieces)
    assert pieces[-1].remaining_bytes == 0 and len(pieces[-1].blob) == 32
    remaining = [p.remaining_bytes for p in pieces[:-1]]
    assert remaining == sorted(remaining, reverse=True) and remaining[-1] == 0
    snapshot.read_snapshot(data)


@needs_etcdctl
@pytest.mark.timeout(60)
def test_alarm_and_defragment(member, channel):
    maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
    raised = [rpc_pb2.AlarmMember(memberID=0, alarm=rpc_pb2.NOSPACE)]
    # as etcd 3.4.23 answers: the alarm changed (member 0 is taken as given), no header
    for action, alarms in ((rpc_pb2.AlarmRequest.GET, []), (rpc_pb2.AlarmRequest.ACTIVATE, raised),
                           (rpc_pb2.AlarmRequest.GET, raised), (rpc_pb2.AlarmRequest.DEACTIVATE, raised),
                           (rpc_pb2.AlarmRequest.DEACTIVATE, [])):
        response = maintenance.Alarm(rpc_pb2.AlarmRequest(action=action, alarm=rpc_pb2.NOSPACE), timeout=10)
        assert list(response.alarms) == alarms
        assert not response.HasField("header")
    assert maintenance.Defragment(rpc_pb2.DefragmentRequest(), timeout=10) == rpc_pb2.DefragmentResponse()
    assert etcdctl(member.endpoint, "alarm", "list").stdout == ""
    assert etcdctl(member.endpoint, "alarm", "disarm").stdout == ""
    assert etcdctl(member.endpoint, "defrag").stdout == \
        f"Finished defragmenting etcd member[{member.endpoint}]\n"
    hashkv = etcdctl(member.endpoint, "endpoint", "hashkv").stdout
    assert hashkv.startswith(f"{member.endpoint}, ")
    serves(channel)


@pytest.mark.timeout(60)
def test_move_leader_on_a_single_member(member, channel):
    maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
    error = rpc_error(lambda: maintenance.MoveLeader(rpc_pb2.MoveLeaderRequest(targetID=12345), timeout=10))
    assert (error.code(), error.details()) == (grpc.StatusCode.FAILED_PRECONDITION,
                                               "etcdserver: bad leader transferee")
    own = maintenance.Status(rpc_pb2.StatusRequest(), timeout=10).header.member_id
    assert maintenance.MoveLeader(rpc_pb2.MoveLeaderRequest(targetID=own), timeout=10) == \
        rpc_pb2.MoveLeaderResponse()


# ---- three members -------------------------------------------------------------------


def _status(endpoint: str):
    with grpc.insecure_channel(endpoint) as ch:
        return rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=5)


@needs_etcdctl
@pytest.mark.timeout(120)
def test_three_members_hash_alike_and_move_leader(make_cluster):
    cluster = make_cluster(3)
    leader = cluster.leader_index()
    endpoints = cluster.endpoints
    channels = [grpc.insecure_channel(e) for e in endpoints]
    try:
        rpc_pb2_grpc.LeaseStub(channels[leader]).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=600), timeout=10)
        for i in range(50):
            put(channels[i % 3], b"trio/%02d" % (i % 20), b"%d" % i)
        rpc_pb2_grpc.KVStub(channels[0]).DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"trio/05"), timeout=10)
        last = put(channels[1], b"trio/last")
        wait_until(lambda: all(_status(e).header.revision == last for e in endpoints),
                   timeout=20, what="every member applied the last write")

        def hashes(revision: int) -> set[tuple[int, int]]:
            found = set()
            for ch in channels:
                r = rpc_pb2_grpc.MaintenanceStub(ch).HashKV(rpc_pb2.HashKVRequest(revision=revision), timeout=10)
                found.add((r.hash, r.compact_revision))
            return found

        assert len(hashes(last)) == 1
        assert len(hashes(last - 10)) == 1
        assert len(hashes(0)) == 1
        whole = {rpc_pb2_grpc.MaintenanceStub(ch).Hash(rpc_pb2.HashRequest(), timeout=10).hash for ch in channels}
        assert len(whole) == 1
        table = etcdctl(",".join(endpoints), "endpoint", "hashkv", "--rev", str(last)).stdout.splitlines()
        assert len(table) == 3 and len({line.split(", ")[1] for line in table}) == 1

        # MoveLeader: only the leader moves leadership, to a member it knows
        follower = (leader + 1) % 3
        maintenance = rpc_pb2_grpc.MaintenanceStub(channels[follower])
        error = rpc_error(lambda: maintenance.MoveLeader(rpc_pb2.MoveLeaderRequest(targetID=1), timeout=10))
        assert (error.code(), error.details()) == (grpc.StatusCode.FAILED_PRECONDITION, "etcdserver: not leader")
        target = _status(endpoints[follower]).header.member_id
        result = etcdctl(",".join(endpoints), "move-leader", format(target, "x"))
        old = _status(endpoints[leader]).header.member_id
        assert result.stdout == f"Leadership transferred from {old:x} to {target:x}\n"
        assert cluster.leader_index() == follower
        for ch in channels:
            serves(ch, b"trio/after-move")
    finally:
        for ch in channels:
            ch.close()
