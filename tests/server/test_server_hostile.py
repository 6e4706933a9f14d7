"""Hostile input never takes a member down: every bad request gets an error
(or a harmless answer) and the member goes on serving.

The member is this module's own (the ``member`` fixture is per module), so
whatever the garbage happens to do to its data stays here.
"""

from __future__ import annotations

import os
import random
import socket

import grpc
import pytest

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv._proto.v3electionpb import v3election_pb2
from raftkv._proto.v3lockpb import v3lock_pb2

from server_helpers import serves

DEFAULT_MAX_REQUEST_BYTES = 1536 * 1024
GRPC_LIMIT = DEFAULT_MAX_REQUEST_BYTES + 512 * 1024

# never valid protobuf: a truncated varint, a length past the end, a varint of 11 bytes, wire type 7
GARBAGE = [b"\xff\xff\xff", b"\x0a\xff\xff\xff\xff\x0f", b"\x08" + b"\xff" * 11, b"\x0f\x01"]

# methods that random bytes could turn into a real change of membership
_NOT_FUZZED = {"/etcdserverpb.Cluster/MemberAdd", "/etcdserverpb.Cluster/MemberUpdate",
               "/etcdserverpb.Cluster/MemberRemove", "/etcdserverpb.Cluster/MemberPromote"}


def _methods():
    for module in (rpc_pb2, v3lock_pb2, v3election_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                yield f"/{service.full_name}/{method.name}", method.client_streaming, method.server_streaming


METHODS = list(_methods())


def _raw_call(channel, path: str, client_streaming: bool, server_streaming: bool, data: bytes,
              timeout: float = 3.0):
    """Send ``data`` as the request (or the one streamed request); the answer or the error."""
    same = lambda b: b  # noqa: E731
    kinds = {(False, False): channel.unary_unary, (False, True): channel.unary_stream,
             (True, False): channel.stream_unary, (True, True): channel.stream_stream}
    call = kinds[(client_streaming, server_streaming)](path, request_serializer=same,
                                                        response_deserializer=same)
    request = iter([data]) if client_streaming else data
    try:
        response = call(request, timeout=timeout)
        if server_streaming:
            response = list(response)
        return response
    except grpc.RpcError as e:
        return e


def _log(member) -> str:
    with open(member.cluster.members[0].log_path, errors="replace") as f:
        return f.read()


@pytest.fixture
def big_channel(member):
    ch = grpc.insecure_channel(member.endpoint, options=[("grpc.max_send_message_length", 2**31 - 1)])
    try:
        yield ch
    finally:
        ch.close()


@pytest.mark.timeout(120)
def test_garbage_bytes_to_every_method(make_cluster):
    cluster = make_cluster(1)
    with grpc.insecure_channel(cluster.members[0].endpoint) as channel:
        for path, client_streaming, server_streaming in METHODS:
            for data in GARBAGE:
                outcome = _raw_call(channel, path, client_streaming, server_streaming, data)
                assert isinstance(outcome, grpc.RpcError), (path, data, outcome)
                assert outcome.code() == grpc.StatusCode.INTERNAL, (path, data, outcome)
                # etcd's wording (the reason after it is protobuf's own)
                prefix = ("grpc: failed to unmarshal the received message " if client_streaming
                          else "grpc: error unmarshalling request: ")
                assert outcome.details().startswith(prefix), (path, outcome.details())
        serves(channel)
    # and it still stops cleanly on SIGTERM: no call was left hanging
    process = cluster.members[0].process
    cluster.stop()
    assert process.returncode == 0, f"the member did not exit on SIGTERM (returncode {process.returncode})"


@pytest.mark.timeout(120)
def test_random_bytes_to_every_method(member, channel):
    rng = random.Random(20240611)
    for path, client_streaming, server_streaming in METHODS:
        if path in _NOT_FUZZED:
            continue
        for _ in range(8):
            data = rng.randbytes(rng.choice([1, 5, 17, 64, 300]))
            # an answer or an error, in time: never a hang or a crash
            _raw_call(channel, path, client_streaming, server_streaming, data, timeout=2.0)
    serves(channel)
    assert member.cluster.members[0].running
    assert "request failed" not in _log(member)  # no servicer hit an unexpected exception


@pytest.mark.timeout(60)
def test_not_grpc_at_all(member, channel):
    host, port = member.endpoint.split(":")
    for payload in (os.urandom(4096), b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + os.urandom(512), b""):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(payload)
            s.settimeout(2)
            try:
                s.recv(1024)
            except (TimeoutError, ConnectionError):
                pass
    serves(channel)


@pytest.mark.timeout(60)
def test_huge_messages(member, big_channel):
    kv = rpc_pb2_grpc.KVStub(big_channel)
    with pytest.raises(grpc.RpcError) as info:
        kv.Put(rpc_pb2.PutRequest(key=b"huge", value=b"x" * (GRPC_LIMIT + 1)), timeout=20)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # past --max-request-bytes but within gRPC's allowance: etcd's own refusal
    with pytest.raises(grpc.RpcError) as info:
        kv.Put(rpc_pb2.PutRequest(key=b"big", value=b"x" * (DEFAULT_MAX_REQUEST_BYTES + 1)), timeout=20)
    assert (info.value.code(), info.value.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                         "etcdserver: request is too large")
    # a huge watch request in a stream, and a huge lock name
    watch = rpc_pb2_grpc.WatchStub(big_channel).Watch(iter([rpc_pb2.WatchRequest(
        create_request=rpc_pb2.WatchCreateRequest(key=b"k" * (GRPC_LIMIT + 10)))]), timeout=10)
    with pytest.raises(grpc.RpcError) as info:
        list(watch)
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    lock = big_channel.unary_unary("/v3lockpb.Lock/Lock", request_serializer=lambda b: b,
                                   response_deserializer=lambda b: b)
    with pytest.raises(grpc.RpcError) as info:
        lock(v3lock_pb2.LockRequest(name=b"n" * (DEFAULT_MAX_REQUEST_BYTES + 10)).SerializeToString(),
             timeout=20)
    assert (info.value.code(), info.value.details()) == (grpc.StatusCode.UNKNOWN,
                                                         "etcdserver: request is too large")
    # many small ops: etcd's txn limit
    ops = [rpc_pb2.RequestOp(request_put=rpc_pb2.PutRequest(key=b"op%d" % i)) for i in range(129)]
    with pytest.raises(grpc.RpcError) as info:
        kv.Txn(rpc_pb2.TxnRequest(success=ops), timeout=20)
    assert info.value.details() == "etcdserver: too many operations in txn request"
    serves(big_channel)


@pytest.mark.timeout(60)
def test_unknown_fields_are_ignored(member, channel):
    unknown = (b"\xa0\x06\x01"          # field 100, varint
               b"\xaa\x06\x03abc"       # field 101, bytes
               b"\xb5\x06\x01\x02\x03\x04"  # field 102, fixed32
               b"\xb9\x06" + bytes(8))  # field 103, fixed64
    put = rpc_pb2.PutRequest(key=b"unknown/k", value=b"v").SerializeToString() + unknown
    answer = _raw_call(channel, "/etcdserverpb.KV/Put", False, False, put)
    assert not isinstance(answer, grpc.RpcError), answer
    assert rpc_pb2.PutResponse.FromString(answer).header.revision > 1
    get = rpc_pb2.RangeRequest(key=b"unknown/k").SerializeToString() + unknown
    answer = rpc_pb2.RangeResponse.FromString(_raw_call(channel, "/etcdserverpb.KV/Range", False, False, get))
    assert [kv.value for kv in answer.kvs] == [b"v"]
    status = _raw_call(channel, "/etcdserverpb.Maintenance/Status", False, False, unknown)
    assert rpc_pb2.StatusResponse.FromString(status).leader
    serves(channel)


@pytest.mark.timeout(60)
def test_absurd_ranges_and_numbers(member, channel):
    kv = rpc_pb2_grpc.KVStub(channel)
    lease = rpc_pb2_grpc.LeaseStub(channel)
    maintenance = rpc_pb2_grpc.MaintenanceStub(channel)
    big = 2**63 - 1
    calls = [
        lambda: kv.Range(rpc_pb2.RangeRequest(key=b""), timeout=5),
        lambda: kv.Range(rpc_pb2.RangeRequest(key=b"z", range_end=b"a"), timeout=5),
        lambda: kv.Range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0", limit=-5), timeout=5),
        lambda: kv.Range(rpc_pb2.RangeRequest(key=b"a", revision=-7), timeout=5),
        lambda: kv.Range(rpc_pb2.RangeRequest(key=b"a", revision=big), timeout=5),
        lambda: kv.Range(rpc_pb2.RangeRequest(key=b"a", sort_order=99, sort_target=77), timeout=5),
        lambda: kv.Range(rpc_pb2.RangeRequest(key=b"\0", range_end=b"\0", max_mod_revision=-1,
                                              min_create_revision=big, count_only=True, keys_only=True),
                         timeout=5),
        lambda: kv.DeleteRange(rpc_pb2.DeleteRangeRequest(key=b"z", range_end=b"a"), timeout=5),
        lambda: kv.Compact(rpc_pb2.CompactionRequest(revision=big), timeout=5),
        lambda: kv.Compact(rpc_pb2.CompactionRequest(revision=-big), timeout=5),
        lambda: kv.Txn(rpc_pb2.TxnRequest(compare=[rpc_pb2.Compare(key=b"a", target=9, result=9)]), timeout=5),
        lambda: kv.Txn(rpc_pb2.TxnRequest(success=[rpc_pb2.RequestOp()]), timeout=5),
        lambda: lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=big), timeout=5),
        lambda: lease.LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=-big, ID=-1), timeout=5),
        lambda: lease.LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=big), timeout=5),
        lambda: lease.LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=-big, keys=True), timeout=5),
        lambda: maintenance.HashKV(rpc_pb2.HashKVRequest(revision=big), timeout=5),
        lambda: maintenance.HashKV(rpc_pb2.HashKVRequest(revision=-big), timeout=5),
        lambda: maintenance.MoveLeader(rpc_pb2.MoveLeaderRequest(targetID=2**64 - 1), timeout=5),
        lambda: maintenance.Alarm(rpc_pb2.AlarmRequest(action=77, alarm=99), timeout=5),
    ]
    for call in calls:
        try:
            call()
        except grpc.RpcError as e:
            assert e.code() != grpc.StatusCode.INTERNAL, e.details()
    # a watch over a reversed range, from a far future revision, canceled straight away
    watch = rpc_pb2_grpc.WatchStub(channel).Watch(iter([rpc_pb2.WatchRequest(
        create_request=rpc_pb2.WatchCreateRequest(key=b"z", range_end=b"a", start_revision=big))]), timeout=3)
    try:
        next(watch)
    except grpc.RpcError:
        pass
    watch.cancel()
    serves(channel)
    assert "request failed" not in _log(member)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        low, n = n & 0x7F, n >> 7
        out.append(low | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _nested_txn(depth: int) -> bytes:
    """A TxnRequest ``depth`` txns deep, encoded by hand (the protobuf library
    refuses to build one this deep)."""
    put = rpc_pb2.PutRequest(key=b"deep", value=b"v").SerializeToString()
    op = b"\x12" + _varint(len(put)) + put                # RequestOp.request_put
    txn = b"\x1a" + _varint(len(op)) + op                 # TxnRequest.success
    for _ in range(depth - 1):
        op = b"\x22" + _varint(len(txn)) + txn            # RequestOp.request_txn
        txn = b"\x1a" + _varint(len(op)) + op
    return txn


@pytest.mark.timeout(60)
def test_deeply_nested_txns(member, big_channel):
    def txn(depth: int):
        return _raw_call(big_channel, "/etcdserverpb.KV/Txn", False, False, _nested_txn(depth), timeout=10)

    ok = txn(31)
    assert not isinstance(ok, grpc.RpcError), ok
    assert rpc_pb2.TxnResponse.FromString(ok).succeeded
    for depth in (33, 60, 1000, 100_000):
        error = txn(depth)
        assert isinstance(error, grpc.RpcError), depth
        assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL), error
    serves(big_channel)
    assert member.cluster.members[0].running
