"""The same servicers over other KVClients, in this process: the embedded
store (its store in this process, like a member's) and a remote client (the
store reachable only through requests, so the hashes and the snapshot are
read through ranges)."""

from __future__ import annotations

import threading

import grpc
import pytest

import raftkv
from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv._proto.v3electionpb import v3election_pb2 as epb
from raftkv._proto.v3electionpb import v3election_pb2_grpc
from raftkv._proto.v3lockpb import v3lock_pb2 as lpb
from raftkv._proto.v3lockpb import v3lock_pb2_grpc
from raftkv.server import snapshot
from raftkv.server.context import ServerContext
from raftkv.server.maintenance import ETCD_API_VERSION
from raftkv.server.metrics import ServerMetrics
from raftkv.server.server import build_server

from server_helpers import free_port, wait_until


def _serve(kv):
    ctx = ServerContext(kv=kv, cluster_id=1, member_id=2, name="inproc", client_urls=[], peer_urls=[])
    address = f"127.0.0.1:{free_port()}"
    server = build_server(ctx, [address], 1536 * 1024, max_workers=16,
                          metrics=ServerMetrics(ctx, ETCD_API_VERSION))
    server.start()
    return server, address


@pytest.fixture
def embedded():
    kv = raftkv.open()
    server, address = _serve(kv)
    channel = grpc.insecure_channel(address)
    try:
        yield kv, channel
    finally:
        channel.close()
        server.stop(grace=None).wait()
        kv.close()


@pytest.mark.timeout(60)
def test_embedded_store_lock_election_and_hashes(embedded):
    kv, channel = embedded
    kv.put("a", "1")
    kv.put("b", "2")
    maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
    at = maintenance.HashKV(rpc_pb2.HashKVRequest(revision=3), timeout=10)
    kv.put("c", "3")
    assert maintenance.HashKV(rpc_pb2.HashKVRequest(revision=3), timeout=10).hash == at.hash
    data = b"".join(p.blob for p in maintenance.Snapshot(rpc_pb2.SnapshotRequest(), timeout=10))
    assert [kv.key for kv in snapshot.read_snapshot(data).kvs] == [b"a", b"b", b"c"]

    locks = v3lock_pb2_grpc.LockStub(channel)
    held = locks.Lock(lpb.LockRequest(name=b"L"), timeout=10)
    waiting = locks.Lock.future(lpb.LockRequest(name=b"L"), timeout=20)
    wait_until(lambda: len(kv.range("L/", prefix=True).kvs) == 2, timeout=5, what="queued")
    assert not waiting.done()
    locks.Unlock(lpb.UnlockRequest(key=held.key), timeout=10)
    assert waiting.result(timeout=10).key != held.key

    election = v3election_pb2_grpc.ElectionStub(channel)
    won = election.Campaign(epb.CampaignRequest(name=b"E", value=b"x"), timeout=10)
    assert election.Leader(epb.LeaderRequest(name=b"E"), timeout=10).kv.value == b"x"
    election.Resign(epb.ResignRequest(leader=won.leader), timeout=10)


@pytest.mark.timeout(60)
def test_a_remote_store_is_hashed_and_snapshotted_through_reads(member, channel):
    rpc_pb2_grpc.KVStub(channel).Put(rpc_pb2.PutRequest(key=b"proxied/k", value=b"v"), timeout=10)
    with raftkv.Client([member.endpoint]) as remote:
        server, address = _serve(remote)
        try:
            with grpc.insecure_channel(address) as proxy:
                maintenance = rpc_pb2_grpc.MaintenanceStub(proxy)
                status = maintenance.Status(rpc_pb2.StatusRequest(), timeout=10)
                first = maintenance.HashKV(rpc_pb2.HashKVRequest(revision=status.header.revision), timeout=10)
                rpc_pb2_grpc.KVStub(channel).Put(rpc_pb2.PutRequest(key=b"proxied/k2"), timeout=10)
                again = maintenance.HashKV(rpc_pb2.HashKVRequest(revision=status.header.revision), timeout=10)
                assert again.hash == first.hash
                assert maintenance.HashKV(rpc_pb2.HashKVRequest(), timeout=10).hash != first.hash
                with pytest.raises(grpc.RpcError) as info:
                    maintenance.HashKV(rpc_pb2.HashKVRequest(revision=10**9), timeout=10)
                assert info.value.code() == grpc.StatusCode.OUT_OF_RANGE
                data = b"".join(p.blob for p in maintenance.Snapshot(rpc_pb2.SnapshotRequest(), timeout=10))
                keys = [kv.key for kv in snapshot.read_snapshot(data).kvs]
                assert b"proxied/k" in keys and b"proxied/k2" in keys
                # a lock taken through the proxy is in the member's store
                key = v3lock_pb2_grpc.LockStub(proxy).Lock(lpb.LockRequest(name=b"proxied-lock"), timeout=10).key
                got = rpc_pb2_grpc.KVStub(channel).Range(rpc_pb2.RangeRequest(key=key), timeout=10)
                assert got.count == 1
        finally:
            server.stop(grace=None).wait()


@pytest.mark.timeout(60)
def test_observe_ends_when_the_caller_leaves(embedded):
    kv, channel = embedded
    election = v3election_pb2_grpc.ElectionStub(channel)
    stream = election.Observe(epb.LeaderRequest(name=b"gone"), timeout=20)
    done = threading.Event()

    def read():
        try:
            for _ in stream:
                pass
        except grpc.RpcError:
            pass
        done.set()

    threading.Thread(target=read, daemon=True).start()
    wait_until(lambda: kv.status().watcher_count == 1, timeout=5, what="observer watches")
    stream.cancel()
    assert done.wait(5)
    wait_until(lambda: kv.status().watcher_count == 0, timeout=5, what="observer's watch ended")


@pytest.mark.timeout(60)
def test_a_remote_clients_status_has_the_members_counts_and_compaction():
    with raftkv.open() as kv:
        server, address = _serve(kv)
        try:
            kv.put("a", "1")
            kv.put("a", "2")
            kv.put("b", "1")
            kv.compact(3)
            lease = kv.lease(60)
            watch = kv.watch("a")
            with raftkv.Client([address]) as remote:
                status = remote.status()
            watch.cancel()
        finally:
            server.stop(grace=None).wait()
    assert (status.compact_revision, status.key_count, status.lease_count, status.watcher_count) == (3, 2, 1, 1)
    assert (status.member_id, status.revision) == (2, 4)
    assert lease.id
