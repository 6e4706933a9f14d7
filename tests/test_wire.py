"""raftkv.wire: dataclass <-> etcd protobuf conversion and the log-entry codec."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from raftkv import wire
from raftkv._proto.etcdserverpb import rpc_pb2
from raftkv._proto.mvccpb import kv_pb2
from raftkv.errors import InvalidArgument, KeyNotFound
from raftkv.mvcc.requests import (
    AlarmAction,
    AlarmRequest,
    AlarmType,
    CompactionRequest,
    CompactionResponse,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    DeleteRangeResponse,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    PutRequest,
    PutResponse,
    RangeRequest,
    RangeResponse,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)
from raftkv.mvcc.compare import compare_holds
from raftkv.mvcc.permissions import Authorized
from raftkv.mvcc.types import Event, EventType, KeyValue
from raftkv.mvcc.watch import WatchResponse
from raftkv.wire import (
    AUTH_TAGS,
    MAX_TXN_DEPTH,
    REQUEST_TAGS,
    EmptyRequestOp,
    ResponseHeader,
    WireError,
    decode_request,
    encode_request,
    event_from_pb,
    event_to_pb,
    kv_from_pb,
    kv_to_pb,
    request_from_pb,
    request_to_pb,
    response_from_pb,
    response_to_pb,
)

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---- strategies ----------------------------------------------------------------

int64 = st.integers(-(2**63), 2**63 - 1)
uint64 = st.integers(0, 2**64 - 1)
keys = st.binary(max_size=6)

key_values = st.builds(
    KeyValue,
    key=keys,
    create_revision=int64,
    mod_revision=int64,
    version=int64,
    value=st.binary(max_size=6),
    lease=int64,
)
events = st.builds(
    Event, type=st.sampled_from(EventType), kv=key_values, prev_kv=st.none() | key_values
)

range_requests = st.builds(
    RangeRequest,
    key=keys,
    range_end=keys,
    limit=int64,
    revision=int64,
    sort_order=st.sampled_from(SortOrder),
    sort_target=st.sampled_from(SortTarget),
    serializable=st.booleans(),
    keys_only=st.booleans(),
    count_only=st.booleans(),
    min_mod_revision=int64,
    max_mod_revision=int64,
    min_create_revision=int64,
    max_create_revision=int64,
)
put_requests = st.builds(
    PutRequest,
    key=keys,
    value=st.binary(max_size=6),
    lease=int64,
    prev_kv=st.booleans(),
    ignore_value=st.booleans(),
    ignore_lease=st.booleans(),
)
delete_requests = st.builds(DeleteRangeRequest, key=keys, range_end=keys, prev_kv=st.booleans())


@st.composite
def compares(draw: st.DrawFn) -> Compare:
    target = draw(st.sampled_from(CompareTarget))
    operand = draw(st.binary(max_size=6) if target == CompareTarget.VALUE else int64)
    return Compare(
        key=draw(keys),
        target=target,
        result=draw(st.sampled_from(CompareResult)),
        operand=operand,
        range_end=draw(keys),
    )


def _txn(children: st.SearchStrategy) -> st.SearchStrategy:
    return st.builds(
        TxnRequest,
        compare=st.lists(compares(), max_size=3),
        success=st.lists(children, max_size=3),
        failure=st.lists(children, max_size=3),
    )


request_ops = st.recursive(
    range_requests | put_requests | delete_requests | st.just(TxnRequest()), _txn, max_leaves=10
)
txn_requests = _txn(request_ops)
requests = st.one_of(
    range_requests,
    put_requests,
    delete_requests,
    txn_requests,
    st.builds(CompactionRequest, revision=int64, physical=st.booleans()),
    st.builds(LeaseGrantRequest, ttl=int64, id=int64),
    st.builds(LeaseRevokeRequest, id=int64),
    st.builds(AlarmRequest, action=st.sampled_from(AlarmAction), member_id=uint64,
              alarm=st.sampled_from(AlarmType)),
)

range_responses = st.builds(
    RangeResponse,
    revision=int64,
    kvs=st.lists(key_values, max_size=3),
    more=st.booleans(),
    count=int64,
)
put_responses = st.builds(PutResponse, revision=int64, prev_kv=st.none() | key_values)
delete_responses = st.builds(
    DeleteRangeResponse, revision=int64, deleted=int64, prev_kvs=st.lists(key_values, max_size=3)
)
response_ops = st.recursive(
    range_responses | put_responses | delete_responses,
    lambda children: st.builds(
        TxnResponse, revision=int64, succeeded=st.booleans(), responses=st.lists(children, max_size=3)
    ),
    max_leaves=10,
)
responses = st.one_of(
    response_ops,
    st.builds(TxnResponse, revision=int64, succeeded=st.booleans(), responses=st.lists(response_ops, max_size=3)),
    st.builds(CompactionResponse, revision=int64),
    st.builds(LeaseGrantResponse, revision=int64, id=int64, ttl=int64),
    st.builds(LeaseRevokeResponse, revision=int64),
)
headers = st.builds(ResponseHeader, cluster_id=uint64, member_id=uint64, raft_term=uint64)


def _reparse(msg):
    """Through real bytes, not just the in-memory message."""
    return type(msg).FromString(msg.SerializeToString())


# ---- round trips ---------------------------------------------------------------


@FAST
@given(requests)
def test_request_round_trip(req):
    msg = request_to_pb(req)
    assert request_from_pb(msg) == req
    assert request_from_pb(_reparse(msg)) == req


@FAST
@given(requests)
def test_encode_decode_round_trip(req):
    data = encode_request(req)
    assert data[0] == REQUEST_TAGS[type(req)]
    assert data[1:] == request_to_pb(req).SerializeToString()
    decoded = decode_request(data)
    assert decoded == req
    assert type(decoded) is type(req)


def _check_nested_headers(msg: rpc_pb2.TxnResponse) -> None:
    for op in msg.responses:
        inner = getattr(op, op.WhichOneof("response"))
        assert inner.HasField("header")
        assert (inner.header.cluster_id, inner.header.member_id, inner.header.raft_term) == (0, 0, 0)
        if isinstance(inner, rpc_pb2.TxnResponse):
            _check_nested_headers(inner)


@FAST
@given(responses, headers)
def test_response_round_trip(resp, header):
    msg = response_to_pb(resp, header)
    assert msg.header.revision == resp.revision
    assert wire.header_from_pb(msg.header) == header
    assert response_from_pb(msg) == resp
    assert response_from_pb(_reparse(msg)) == resp
    if isinstance(msg, rpc_pb2.TxnResponse):
        _check_nested_headers(msg)


@FAST
@given(key_values)
def test_kv_round_trip(kv):
    assert kv_from_pb(_reparse(kv_to_pb(kv))) == kv


@FAST
@given(events)
def test_event_round_trip(event):
    msg = _reparse(event_to_pb(event))
    assert msg.HasField("kv")
    assert msg.HasField("prev_kv") == (event.prev_kv is not None)
    back = event_from_pb(msg)
    assert back == event
    assert type(back.type) is EventType


@FAST
@given(
    st.builds(
        WatchResponse,
        watch_id=int64,
        revision=int64,
        events=st.lists(events, max_size=3),
        compact_revision=int64,
        canceled=st.booleans(),
        cancel_reason=st.text(max_size=5),
    ),
    headers,
)
def test_watch_response_round_trip(resp, header):
    msg = _reparse(wire.watch_response_to_pb(resp, header))
    assert msg.header.revision == resp.revision
    assert wire.header_from_pb(msg.header) == header
    assert wire.watch_response_from_pb(msg) == resp


def test_generic_dispatch():
    kv = KeyValue(b"k", 1, 2, 1, b"v")
    header = ResponseHeader(7, 8, 9)
    cases = [
        kv,
        Event(EventType.PUT, kv),
        Compare(b"k", CompareTarget.MOD, CompareResult.LESS, 3),
        PutRequest(b"k", b"v"),
        TxnResponse(4, True, [PutResponse(4, kv)]),
        WatchResponse(1, 4, [Event(EventType.PUT, kv)]),
    ]
    for obj in cases:
        msg = wire.to_pb(obj, header)
        assert wire.from_pb(msg) == obj
    assert wire.to_pb(PutResponse(4), header).header.member_id == 8
    op = wire.request_op_to_pb(PutRequest(b"k"))
    assert op.WhichOneof("request") == "request_put"
    assert wire.from_pb(op) == PutRequest(b"k")
    rop = wire.response_op_to_pb(RangeResponse(3))
    assert rop.response_range.header.revision == 3
    assert wire.from_pb(rop) == RangeResponse(3)


# ---- exact bytes (derived from the field numbers in the .proto files) ----------


@pytest.mark.parametrize(
    ("req", "expected"),
    [
        # PutRequest: key=1 (0a), value=2 (12)
        (PutRequest(key=b"a", value=b"b"), "0a0161 120162"),
        # defaults are omitted entirely
        (PutRequest(key=b""), ""),
        # lease=3 (18) 300 = ac 02; prev_kv=4 (20); ignore_value=5 (28); ignore_lease=6 (30)
        (PutRequest(b"a", lease=300, prev_kv=True, ignore_value=True, ignore_lease=True), "0a0161 18ac02 2001 2801 3001"),
        # RangeRequest: range_end=2 (12), limit=3 (18), sort_order=5 (28), sort_target=6 (30),
        # serializable=7 (38), min_mod_revision=10 (50), max_create_revision=13 (68)
        (
            RangeRequest(b"a", b"b", limit=10, sort_order=SortOrder.DESCEND, sort_target=SortTarget.MOD,
                         serializable=True, min_mod_revision=1, max_create_revision=2),
            "0a0161 120162 180a 2802 3003 3801 5001 6802",
        ),
        # revision=4 (20): int64 -1 is a 10-byte varint
        (RangeRequest(b"a", revision=-1), "0a0161 20ffffffffffffffffff01"),
        # DeleteRangeRequest: prev_kv=3 (18)
        (DeleteRangeRequest(b"a", prev_kv=True), "0a0161 1801"),
        # CompactionRequest: revision=1 (08) 300, physical=2 (10)
        (CompactionRequest(300, physical=True), "08ac02 1001"),
        # LeaseGrantRequest: TTL=1 (08), ID=2 (10) 0x1234 = b4 24
        (LeaseGrantRequest(ttl=60, id=0x1234), "083c 10b424"),
        (LeaseRevokeRequest(id=5), "0805"),
        # TxnRequest: compare=1 (0a), success=2 (12), failure=3 (1a);
        # Compare: key=3 (1a), version=4 (20) present even when 0 (oneof member);
        # RequestOp: request_put=2 (12), request_txn=4 (22)
        (
            TxnRequest(
                compare=[Compare(b"a", CompareTarget.VERSION, CompareResult.EQUAL, 0)],
                success=[PutRequest(b"a", b"b")],
                failure=[TxnRequest()],
            ),
            "0a05 1a0161 2000" "1208 1206 0a0161120162" "1a02 2200",
        ),
    ],
)
def test_request_exact_bytes(req, expected):
    want = bytes.fromhex(expected.replace(" ", ""))
    assert request_to_pb(req).SerializeToString() == want
    tag = REQUEST_TAGS[type(req)]
    assert encode_request(req) == bytes([tag]) + want
    assert decode_request(bytes([tag]) + want) == req


def test_tags_are_documented_values():
    assert sorted(AUTH_TAGS.values()) == list(range(0x09, 0x19))
    assert {cls.__name__: tag for cls, tag in REQUEST_TAGS.items() if cls not in AUTH_TAGS} == {
        "RangeRequest": 1,
        "PutRequest": 2,
        "DeleteRangeRequest": 3,
        "TxnRequest": 4,
        "CompactionRequest": 5,
        "LeaseGrantRequest": 6,
        "LeaseRevokeRequest": 7,
        "AlarmRequest": 8,
    }
    assert encode_request(PutRequest(key=b"a", value=b"b")) == bytes.fromhex("02 0a0161 120162")


def test_an_authorized_request_carries_its_auth_revision():
    entry = encode_request(Authorized(PutRequest(key=b"a", value=b"b"), 7))
    assert entry == bytes.fromhex("40 0000000000000007 02 0a0161 120162")
    assert decode_request(entry) == Authorized(PutRequest(key=b"a", value=b"b"), 7)
    with pytest.raises(WireError):
        encode_request(Authorized(PutRequest(key=b"a"), -1))


@pytest.mark.parametrize(
    ("cmp", "expected"),
    [
        # result=1 (08), target=2 (10), key=3 (1a), value=7 (3a), range_end=64 (wire type 2 -> 82 04)
        (Compare(b"a", CompareTarget.VALUE, CompareResult.NOT_EQUAL, b"x", b"z"), "0803 1003 1a0161 3a0178 8204017a"),
        (Compare(b"a", CompareTarget.VALUE, CompareResult.EQUAL, b""), "1003 1a0161 3a00"),
        # create_revision=5 (28), mod_revision=6 (30), lease=8 (40)
        (Compare(b"a", CompareTarget.CREATE, CompareResult.GREATER, 5), "0801 1001 1a0161 2805"),
        (Compare(b"a", CompareTarget.MOD, CompareResult.LESS, -1), "0802 1002 1a0161 30ffffffffffffffffff01"),
        (Compare(b"a", CompareTarget.LEASE, CompareResult.EQUAL, 0), "1004 1a0161 4000"),
    ],
)
def test_compare_exact_bytes(cmp, expected):
    msg = wire.compare_to_pb(cmp)
    assert msg.SerializeToString() == bytes.fromhex(expected.replace(" ", ""))
    back = wire.compare_from_pb(_reparse(msg))
    assert back == cmp
    assert type(back.target) is CompareTarget and type(back.result) is CompareResult


def test_compare_operand_of_wrong_type_means_zero_like_etcd():
    # the dataclass default operand (0) with a VALUE target means value == b""
    msg = wire.compare_to_pb(Compare(b"a", CompareTarget.VALUE, CompareResult.EQUAL))
    assert msg.WhichOneof("target_union") == "value" and msg.value == b""
    assert wire.compare_to_pb(Compare(b"a", CompareTarget.MOD, CompareResult.EQUAL, b"x")).mod_revision == 0
    # decoding: missing or mismatched union member -> the target's zero value
    assert wire.compare_from_pb(rpc_pb2.Compare(key=b"a", target=CompareTarget.VALUE)).operand == b""
    assert wire.compare_from_pb(rpc_pb2.Compare(key=b"a", target=CompareTarget.VERSION, mod_revision=5)).operand == 0
    assert wire.compare_from_pb(rpc_pb2.Compare(key=b"a", target=CompareTarget.LEASE, value=b"x")).operand == 0


def test_keyvalue_exact_bytes():
    # key=1 (0a), create_revision=2 (10), mod_revision=3 (18), version=4 (20);
    # empty value (5) and lease 0 (6) are omitted, as etcd does
    assert kv_to_pb(KeyValue(b"a", 2, 3, 1)).SerializeToString() == bytes.fromhex("0a0161 1002 1803 2001".replace(" ", ""))
    # value=5 (2a), lease=6 (30)
    assert kv_to_pb(KeyValue(b"a", 2, 3, 1, b"v", 7)).SerializeToString() == bytes.fromhex(
        "0a0161 1002 1803 2001 2a0176 3007".replace(" ", "")
    )
    assert kv_to_pb(KeyValue(b"", 0, 0, 0)).SerializeToString() == b""


def test_event_exact_bytes():
    # type=1 (08) DELETE=1, kv=2 (12): a tombstone is key + mod_revision
    assert event_to_pb(Event(EventType.DELETE, KeyValue(b"a", 0, 7, 0))).SerializeToString() == bytes.fromhex(
        "0801 1205 0a0161 1807".replace(" ", "")
    )
    # kv is always present; prev_kv=3 (1a) when given, even if all defaults
    assert event_to_pb(Event(EventType.PUT, KeyValue(b"", 0, 0, 0))).SerializeToString() == bytes.fromhex("1200")
    assert event_to_pb(
        Event(EventType.PUT, KeyValue(b"", 0, 0, 0), KeyValue(b"", 0, 0, 0))
    ).SerializeToString() == bytes.fromhex("12001a00")


def test_response_exact_bytes():
    header = ResponseHeader(cluster_id=1, member_id=2, raft_term=3)
    # ResponseHeader: cluster_id=1 (08), member_id=2 (10), revision=3 (18), raft_term=4 (20)
    hdr = "0a08 0801 1002 1805 2003"
    assert response_to_pb(PutResponse(5), header).SerializeToString() == bytes.fromhex(hdr.replace(" ", ""))
    # header present even when all zero; PutResponse.prev_kv=2 (12) present even if all defaults
    assert response_to_pb(PutResponse(0, KeyValue(b"", 0, 0, 0))).SerializeToString() == bytes.fromhex("0a001200")
    # TxnResponse: succeeded=2 (10), responses=3 (1a); ResponseOp.response_put=2 (12),
    # response_txn=4 (22); nested headers carry only the revision
    txn = TxnResponse(5, True, [PutResponse(4), TxnResponse(0, False)])
    assert response_to_pb(txn, header).SerializeToString() == bytes.fromhex(
        (hdr + " 1001 1a06 1204 0a02 1804 1a04 2202 0a00").replace(" ", "")
    )
    # RangeResponse: kvs=2 (12), more=3 (18), count=4 (20)
    rng = RangeResponse(9, [KeyValue(b"a", 2, 3, 1)], more=True, count=2)
    assert response_to_pb(rng).SerializeToString() == bytes.fromhex(
        "0a02 1809 1209 0a0161100218032001 1801 2002".replace(" ", "")
    )
    # DeleteRangeResponse: deleted=2 (10), prev_kvs=3 (1a); LeaseGrantResponse: ID=2 (10), TTL=3 (18)
    assert response_to_pb(DeleteRangeResponse(1, 1, [])).SerializeToString() == bytes.fromhex("0a0218011001")
    assert response_to_pb(LeaseGrantResponse(1, id=5, ttl=60)).SerializeToString() == bytes.fromhex("0a0218011005183c")
    assert response_to_pb(CompactionResponse(1)).SerializeToString() == bytes.fromhex("0a021801")
    assert response_to_pb(LeaseRevokeResponse(1)).SerializeToString() == bytes.fromhex("0a021801")


# ---- rejection -----------------------------------------------------------------


def test_wire_error_types():
    assert issubclass(WireError, InvalidArgument) and issubclass(WireError, ValueError)
    assert WireError.grpc_code == "INVALID_ARGUMENT"
    assert issubclass(EmptyRequestOp, WireError) and issubclass(EmptyRequestOp, KeyNotFound)
    assert str(EmptyRequestOp()) == "etcdserver: key not found"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00",  # unassigned tag
        b"\x19",
        b"\x08\x08\x07",  # an alarm action etcd does not have
        b"\xff\x0a\x01a",
        b"\x02\x0a\x05a",  # truncated length-delimited field
        b"\x02\x0a",
        b"\x02\xff",  # truncated tag varint
        b"\x02\x0b",  # wire type 3 (start group) without end
        b"\x01\x30\x05",  # sort_target = 5 (etcd 3.4.23 crashes on it)
        b"\x40\x00\x00\x00\x00\x00\x00\x07",  # an authorized entry cut short
        b"\x40" + bytes(8),  # ... with no request in it
        b"\x40" + bytes(8) + b"\x40" + bytes(8) + b"\x02\x0a\x01a",  # authorized twice
    ],
)
def test_decode_rejects_garbage(data):
    with pytest.raises(WireError):
        decode_request(data)


def test_unknown_sort_order_sorts_nothing():
    # etcd reads every key and sorts none, whatever the target
    for target in (0, 3, 9):
        request = decode_request(b"\x01\x28\x09\x30" + bytes([target]))
        assert request.sort_order == SortOrder.NONE and request.sort_target == SortTarget.KEY


def _decoded_compare(target: int, result: int) -> Compare:
    txn = decode_request(bytes([4, 0x0A, 4, 0x08, result, 0x10, target]))
    return txn.compare[0]


@pytest.mark.parametrize(
    "target, result, holds_on_missing, holds_on_present",
    [
        (7, CompareResult.EQUAL, True, True),  # an unknown target compares nothing: as if equal
        (7, 9, True, True),  # and an unknown result holds
        (7, CompareResult.NOT_EQUAL, False, False),
        (7, CompareResult.GREATER, False, False),
        (7, CompareResult.LESS, False, False),
        (CompareTarget.VALUE, 9, False, True),  # a value compare never holds on a missing key
        (CompareTarget.VERSION, 9, True, True),
        (CompareTarget.MOD, 9, True, True),
    ],
)
def test_unknown_compare_numbers_hold_as_in_etcd(target, result, holds_on_missing, holds_on_present):
    compare = _decoded_compare(target, result)
    assert compare.target in CompareTarget.__members__.values()
    assert compare.result in CompareResult.__members__.values()
    present = KeyValue(key=b"", create_revision=2, mod_revision=3, version=1, value=b"v")
    assert compare_holds(compare, []) is holds_on_missing
    assert compare_holds(compare, [present]) is holds_on_present


def test_empty_request_op_is_etcds_key_not_found():
    with pytest.raises(EmptyRequestOp) as info:
        decode_request(b"\x04\x12\x00")  # TxnRequest.success = [RequestOp{}]
    assert isinstance(info.value, KeyNotFound)
    assert str(info.value) == "etcdserver: key not found"
    with pytest.raises(EmptyRequestOp):
        request_from_pb(rpc_pb2.TxnRequest(failure=[rpc_pb2.RequestOp()]))
    with pytest.raises(WireError):
        wire.response_op_from_pb(rpc_pb2.ResponseOp())


def test_decode_type_error_for_non_bytes():
    with pytest.raises(TypeError):
        decode_request("\x02")  # type: ignore[arg-type]
    assert decode_request(bytearray(b"\x07\x08\x05")) == LeaseRevokeRequest(5)
    assert decode_request(memoryview(b"\x07\x08\x05")) == LeaseRevokeRequest(5)


def _nested(levels: int) -> TxnRequest:
    txn = TxnRequest(success=[PutRequest(b"a")])
    for _ in range(levels - 1):
        txn = TxnRequest(success=[txn])
    return txn


def test_txn_nesting_limit():
    deepest = _nested(MAX_TXN_DEPTH)
    assert decode_request(encode_request(deepest)) == deepest
    with pytest.raises(WireError):
        encode_request(_nested(MAX_TXN_DEPTH + 1))
    with pytest.raises(WireError):
        request_to_pb(TxnRequest(failure=[_nested(MAX_TXN_DEPTH)]))
    # a message that parses but nests too deeply is refused on the way in, too
    msg = rpc_pb2.TxnRequest()
    cur = msg
    for _ in range(MAX_TXN_DEPTH):
        cur = cur.success.add().request_txn
    with pytest.raises(WireError):
        request_from_pb(msg)
    with pytest.raises(WireError):
        decode_request(b"\x04" + msg.SerializeToString())
    # beyond the protobuf parser's own recursion limit
    for _ in range(40):
        cur = cur.success.add().request_txn
    with pytest.raises(WireError):
        decode_request(b"\x04" + msg.SerializeToString())


@pytest.mark.parametrize(
    "req",
    [
        PutRequest(b"a", lease=2**63),
        RangeRequest(b"a", limit=-(2**63) - 1),
        LeaseGrantRequest(ttl=1, id=2**64),
        RangeRequest(b"a", sort_order=7),  # type: ignore[arg-type]
        TxnRequest(compare=[Compare(b"a", 9, CompareResult.EQUAL)]),  # type: ignore[arg-type]
        TxnRequest(success=[CompactionRequest(1)]),  # type: ignore[list-item]
        Compare(b"a", CompareTarget.VALUE, CompareResult.EQUAL),  # not a request
        "put a b",
    ],
)
def test_encode_rejects_unrepresentable(req):
    with pytest.raises(WireError):
        encode_request(req)  # type: ignore[arg-type]


def test_response_rejects_out_of_range_and_unknown():
    with pytest.raises(WireError):
        response_to_pb(PutResponse(2**63))
    with pytest.raises(WireError):
        response_to_pb(PutRequest(b"a"))  # type: ignore[arg-type]
    with pytest.raises(WireError):
        response_to_pb(TxnResponse(1, True, [CompactionResponse(1)]))  # type: ignore[list-item]
    with pytest.raises(WireError):
        event_from_pb(kv_pb2.Event(type=5))


def _mutations(draw: st.DrawFn) -> bytes:
    data = bytearray(encode_request(draw(requests)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "cut", "insert"]))
        pos = draw(st.integers(0, len(data)))
        if kind == "flip" and pos < len(data):
            data[pos] = draw(st.integers(0, 255))
        elif kind == "cut":
            del data[pos:]
        else:
            data[pos:pos] = draw(st.binary(min_size=1, max_size=3))
    return bytes(data)


garbage = st.one_of(
    st.binary(max_size=64),
    st.builds(lambda tag, body: bytes([tag]) + body, st.integers(1, 7), st.binary(max_size=64)),
    st.composite(_mutations)(),
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage)
def test_decode_garbage_gives_typed_error_or_valid_request(data):
    try:
        req = decode_request(data)
    except WireError:
        return
    assert type(req) in REQUEST_TAGS
    assert data[0] == REQUEST_TAGS[type(req)]
    # whatever was accepted is a well-formed request that survives the codec
    assert decode_request(encode_request(req)) == req


@settings(max_examples=300, deadline=None)
@given(requests)
def test_request_size_counts_etcds_encoding_exactly(req):
    """--max-request-bytes is checked against the request as etcd encodes it:
    the store's size computation must agree with the protobuf encoding."""
    from raftkv.mvcc.requests import _body_size

    assert _body_size(req) == len(request_to_pb(req).SerializeToString())
