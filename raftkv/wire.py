"""Conversion between raftkv's request/response dataclasses and etcd's protobufs.

Two jobs:

* **gRPC mapping** -- ``request_to_pb`` / ``request_from_pb`` and
  ``response_to_pb`` / ``response_from_pb`` (plus ``kv_*``, ``event_*``,
  ``compare_*``, ``watch_response_*`` and the generic ``to_pb`` / ``from_pb``)
  translate field for field between :mod:`raftkv.mvcc.requests` and the
  generated ``etcdserverpb`` / ``mvccpb`` messages, recursively through the
  ``RequestOp`` / ``ResponseOp`` oneofs of (nested) txns.
* **log-entry codec** -- ``encode_request`` / ``decode_request``: one tag byte
  naming the request type followed by the protobuf serialization of the
  request.  The tags (``REQUEST_TAGS``):

  ====  ======================  ==========================================
  tag   dataclass               protobuf payload
  ====  ======================  ==========================================
  0x01  RangeRequest            etcdserverpb.RangeRequest
  0x02  PutRequest              etcdserverpb.PutRequest
  0x03  DeleteRangeRequest      etcdserverpb.DeleteRangeRequest
  0x04  TxnRequest              etcdserverpb.TxnRequest
  0x05  CompactionRequest       etcdserverpb.CompactionRequest
  0x06  LeaseGrantRequest       etcdserverpb.LeaseGrantRequest
  0x07  LeaseRevokeRequest      etcdserverpb.LeaseRevokeRequest
  0x08  AlarmRequest            etcdserverpb.AlarmRequest
  0x09- auth requests           etcdserverpb.Auth*Request (``AUTH_TAGS``;
  0x18                          passwords travel hashed, tokens as chosen)
  ====  ======================  ==========================================

  0x01-0x04 equal the field numbers of etcd's ``RequestOp`` oneof.  0x00 and
  0x19-0xff are unassigned and rejected.

Errors: everything this module rejects raises :class:`WireError`, which is
both a :class:`raftkv.errors.InvalidArgument` (so the gRPC layer answers
INVALID_ARGUMENT) and a :class:`ValueError`.  ``decode_request`` raises only
``WireError`` for any ``bytes`` input (``TypeError`` if handed a non-bytes
object).  A ``RequestOp`` with no request set raises :class:`EmptyRequestOp`,
a ``WireError`` that is also :class:`raftkv.errors.KeyNotFound` and carries
etcd's exact message for that case ("etcdserver: key not found").

Semantics worth knowing:

* proto3 defaults are omitted, as etcd (gogoproto) does: a ``KeyValue`` with
  empty value and lease 0 has no field 5/6 on the wire.
* ``Compare.target_union`` is chosen by ``target``: ``value`` (bytes) for
  VALUE, else the ``version`` / ``create_revision`` / ``mod_revision`` /
  ``lease`` int.  Like etcd's clientv3 the union member is always set, even to
  a zero value (so ``Version(k) = 0`` encodes ``20 00``).  An operand of the
  wrong Python type for its target (e.g. the dataclass default ``0`` with
  target VALUE) is encoded as that target's zero value -- exactly how
  :mod:`raftkv.mvcc.compare` and etcd evaluate it.  Decoding, a missing or
  mismatched union member likewise yields the target's zero value (etcd's
  ``compareKV`` type-asserts the union the same way).
* Enums are mapped by number; numbers outside the enum (possible in proto3)
  are rejected with ``WireError`` where etcd would silently ignore them.
* Txn nesting is limited to ``MAX_TXN_DEPTH`` levels (the outermost txn is
  level 1) in both directions, so that everything ``encode_request`` accepts
  stays within the protobuf parser's recursion limit (100 message levels,
  i.e. about 50 txn levels) and can always be decoded again.
* Unknown protobuf fields are ignored (ordinary protobuf forward
  compatibility); ``LeaseGrantResponse.error`` and ``WatchResponse.created``
  / ``fragment`` have no dataclass counterpart and are left empty / dropped.
* Responses: ``header.revision`` is the dataclass's ``revision``; the other
  top-level header fields come from the ``ResponseHeader`` filler passed to
  ``response_to_pb``.  Responses nested in a ``TxnResponse`` carry a header
  with only their revision, as etcd's do.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, Union

from google.protobuf.message import DecodeError, Message

from raftkv._proto.authpb import auth_pb2
from raftkv._proto.etcdserverpb import rpc_pb2
from raftkv._proto.mvccpb import kv_pb2
from raftkv.errors import InvalidArgument, KeyNotFound
from raftkv.mvcc import auth
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
    RequestOp,
    ResponseOp,
    SortOrder,
    SortTarget,
    TxnRequest,
    TxnResponse,
)
from raftkv.mvcc.permissions import Authorized
from raftkv.mvcc.types import Event, EventType, KeyValue
from raftkv.mvcc.watch import WatchResponse

__all__ = [
    "MAX_TXN_DEPTH",
    "REQUEST_TAGS",
    "EmptyRequestOp",
    "Request",
    "RequestMessage",
    "Response",
    "ResponseHeader",
    "ResponseMessage",
    "WireError",
    "compare_from_pb",
    "compare_to_pb",
    "decode_request",
    "encode_request",
    "event_from_pb",
    "event_to_pb",
    "from_pb",
    "header_from_pb",
    "kv_from_pb",
    "kv_to_pb",
    "request_from_pb",
    "request_op_from_pb",
    "request_op_to_pb",
    "request_to_pb",
    "response_from_pb",
    "response_op_from_pb",
    "response_op_to_pb",
    "response_to_pb",
    "to_pb",
    "watch_response_from_pb",
    "watch_response_to_pb",
]


class WireError(InvalidArgument, ValueError):
    """A message or log entry that cannot be converted (malformed, unknown
    tag or enum value, out-of-range integer, too deeply nested txn)."""

    message = "raftkv: malformed request"


class EmptyRequestOp(WireError, KeyNotFound):
    """A ``RequestOp`` with no request in its oneof; etcd rejects it with
    "key not found"."""

    message = KeyNotFound.message


#: Deepest txn nesting accepted (the outermost txn is level 1).
MAX_TXN_DEPTH = 32

Request = Union[
    RangeRequest,
    PutRequest,
    DeleteRangeRequest,
    TxnRequest,
    CompactionRequest,
    LeaseGrantRequest,
    LeaseRevokeRequest,
    AlarmRequest,
]
Response = Union[
    RangeResponse,
    PutResponse,
    DeleteRangeResponse,
    TxnResponse,
    CompactionResponse,
    LeaseGrantResponse,
    LeaseRevokeResponse,
]
RequestMessage = Union[
    rpc_pb2.RangeRequest,
    rpc_pb2.PutRequest,
    rpc_pb2.DeleteRangeRequest,
    rpc_pb2.TxnRequest,
    rpc_pb2.CompactionRequest,
    rpc_pb2.LeaseGrantRequest,
    rpc_pb2.LeaseRevokeRequest,
    rpc_pb2.AlarmRequest,
]
ResponseMessage = Union[
    rpc_pb2.RangeResponse,
    rpc_pb2.PutResponse,
    rpc_pb2.DeleteRangeResponse,
    rpc_pb2.TxnResponse,
    rpc_pb2.CompactionResponse,
    rpc_pb2.LeaseGrantResponse,
    rpc_pb2.LeaseRevokeResponse,
]


@dataclass(frozen=True, slots=True)
class ResponseHeader:
    """What a server fills into a top-level response header besides the
    revision (which comes from the response itself)."""

    cluster_id: int = 0
    member_id: int = 0
    raft_term: int = 0


_F = TypeVar("_F", bound=Callable[..., Any])


def _typed_errors(fn: _F) -> _F:
    """Turn protobuf's ValueError/TypeError (out-of-range ints, wrong field
    types) and bad enum numbers into WireError."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except WireError:
            raise
        except (ValueError, TypeError, OverflowError) as exc:
            raise WireError(f"raftkv: cannot convert {type(args[0]).__name__}: {exc}") from exc

    return wrapper  # type: ignore[return-value]


_E = TypeVar("_E")


def _enum(cls: Callable[[int], _E], number: int, what: str) -> _E:
    try:
        return cls(number)
    except ValueError:
        raise WireError(f"raftkv: unknown {what} {number}") from None


# ---- mvccpb ------------------------------------------------------------------


@_typed_errors
def kv_to_pb(kv: KeyValue) -> kv_pb2.KeyValue:
    return kv_pb2.KeyValue(
        key=kv.key,
        create_revision=kv.create_revision,
        mod_revision=kv.mod_revision,
        version=kv.version,
        value=kv.value,
        lease=kv.lease,
    )


def kv_from_pb(msg: kv_pb2.KeyValue) -> KeyValue:
    return KeyValue(
        key=msg.key,
        create_revision=msg.create_revision,
        mod_revision=msg.mod_revision,
        version=msg.version,
        value=msg.value,
        lease=msg.lease,
    )


def _set_kv(field: kv_pb2.KeyValue, kv: KeyValue) -> None:
    field.SetInParent()  # present even when every field is a default
    field.CopyFrom(kv_to_pb(kv))


@_typed_errors
def event_to_pb(event: Event) -> kv_pb2.Event:
    msg = kv_pb2.Event(type=_enum(EventType, event.type, "event type").value)
    _set_kv(msg.kv, event.kv)
    if event.prev_kv is not None:
        _set_kv(msg.prev_kv, event.prev_kv)
    return msg


@_typed_errors
def event_from_pb(msg: kv_pb2.Event) -> Event:
    return Event(
        type=_enum(EventType, msg.type, "event type"),
        kv=kv_from_pb(msg.kv),
        prev_kv=kv_from_pb(msg.prev_kv) if msg.HasField("prev_kv") else None,
    )


# ---- requests ----------------------------------------------------------------

_UNION_FIELD = {
    CompareTarget.VERSION: "version",
    CompareTarget.CREATE: "create_revision",
    CompareTarget.MOD: "mod_revision",
    CompareTarget.VALUE: "value",
    CompareTarget.LEASE: "lease",
}


@_typed_errors
def compare_to_pb(cmp: Compare) -> rpc_pb2.Compare:
    target = _enum(CompareTarget, cmp.target, "compare target")
    result = _enum(CompareResult, cmp.result, "compare result")
    msg = rpc_pb2.Compare(result=result.value, target=target.value, key=cmp.key, range_end=cmp.range_end)
    operand = cmp.operand
    if target == CompareTarget.VALUE:
        msg.value = operand if isinstance(operand, bytes) else b""
    else:
        setattr(msg, _UNION_FIELD[target], int(operand) if isinstance(operand, int) else 0)
    return msg


@_typed_errors
def compare_from_pb(msg: rpc_pb2.Compare) -> Compare:
    known_target = msg.target in CompareTarget.__members__.values()
    known_result = msg.result in CompareResult.__members__.values()
    if not (known_target and known_result):
        return _unknown_compare(msg, known_target)
    target = CompareTarget(msg.target)
    result = CompareResult(msg.result)
    field = _UNION_FIELD[target]
    operand: bytes | int
    if msg.WhichOneof("target_union") == field:
        operand = getattr(msg, field)
    else:
        operand = b"" if target == CompareTarget.VALUE else 0
    return Compare(key=msg.key, target=target, result=result, operand=operand, range_end=msg.range_end)


# Compares that hold for every key, and for none, whatever the key holds.
_ALWAYS = (CompareTarget.VERSION, CompareResult.NOT_EQUAL, -1)
_NEVER = (CompareTarget.VERSION, CompareResult.LESS, 0)
_EXISTS = (CompareTarget.VERSION, CompareResult.GREATER, 0)


def _unknown_compare(msg: rpc_pb2.Compare, known_target: bool) -> Compare:
    """etcd accepts enum numbers it does not know and evaluates them: an
    unknown target compares nothing (as if equal), an unknown result holds,
    except that a value compare on a missing key never does. The same truth,
    in a compare raftkv knows (so the log holds only known numbers)."""
    if not known_target:
        equal = msg.result == CompareResult.EQUAL or msg.result not in CompareResult.__members__.values()
        target, result, operand = _ALWAYS if equal else _NEVER
    elif msg.target == CompareTarget.VALUE:
        target, result, operand = _EXISTS
    else:
        target, result, operand = _ALWAYS
    return Compare(key=msg.key, target=target, result=result, operand=operand, range_end=msg.range_end)


def _range_to_pb(req: RangeRequest) -> rpc_pb2.RangeRequest:
    return rpc_pb2.RangeRequest(
        key=req.key,
        range_end=req.range_end,
        limit=req.limit,
        revision=req.revision,
        sort_order=_enum(SortOrder, req.sort_order, "sort order").value,
        sort_target=_enum(SortTarget, req.sort_target, "sort target").value,
        serializable=req.serializable,
        keys_only=req.keys_only,
        count_only=req.count_only,
        min_mod_revision=req.min_mod_revision,
        max_mod_revision=req.max_mod_revision,
        min_create_revision=req.min_create_revision,
        max_create_revision=req.max_create_revision,
    )


def _range_from_pb(msg: rpc_pb2.RangeRequest) -> RangeRequest:
    known_order = msg.sort_order in SortOrder.__members__.values()
    return RangeRequest(
        key=msg.key,
        range_end=msg.range_end,
        limit=msg.limit,
        revision=msg.revision,
        # an order etcd does not know: it sorts nothing, whatever the target (key order)
        sort_order=SortOrder(msg.sort_order) if known_order else SortOrder.NONE,
        sort_target=_enum(SortTarget, msg.sort_target, "sort target") if known_order else SortTarget.KEY,
        serializable=msg.serializable,
        keys_only=msg.keys_only,
        count_only=msg.count_only,
        min_mod_revision=msg.min_mod_revision,
        max_mod_revision=msg.max_mod_revision,
        min_create_revision=msg.min_create_revision,
        max_create_revision=msg.max_create_revision,
    )


def _put_to_pb(req: PutRequest) -> rpc_pb2.PutRequest:
    return rpc_pb2.PutRequest(
        key=req.key,
        value=req.value,
        lease=req.lease,
        prev_kv=req.prev_kv,
        ignore_value=req.ignore_value,
        ignore_lease=req.ignore_lease,
    )


def _put_from_pb(msg: rpc_pb2.PutRequest) -> PutRequest:
    return PutRequest(
        key=msg.key,
        value=msg.value,
        lease=msg.lease,
        prev_kv=msg.prev_kv,
        ignore_value=msg.ignore_value,
        ignore_lease=msg.ignore_lease,
    )


def _delete_to_pb(req: DeleteRangeRequest) -> rpc_pb2.DeleteRangeRequest:
    return rpc_pb2.DeleteRangeRequest(key=req.key, range_end=req.range_end, prev_kv=req.prev_kv)


def _delete_from_pb(msg: rpc_pb2.DeleteRangeRequest) -> DeleteRangeRequest:
    return DeleteRangeRequest(key=msg.key, range_end=msg.range_end, prev_kv=msg.prev_kv)


def _too_deep(depth: int) -> WireError:
    return WireError(f"raftkv: txn nested deeper than {MAX_TXN_DEPTH} levels")


def _fill_txn(msg: rpc_pb2.TxnRequest, req: TxnRequest, depth: int) -> None:
    if depth > MAX_TXN_DEPTH:
        raise _too_deep(depth)
    for cmp in req.compare:
        msg.compare.append(compare_to_pb(cmp))
    for ops, out in ((req.success, msg.success), (req.failure, msg.failure)):
        for op in ops:
            _fill_request_op(out.add(), op, depth)


def _fill_request_op(out: rpc_pb2.RequestOp, op: RequestOp, depth: int) -> None:
    if isinstance(op, TxnRequest):
        out.request_txn.SetInParent()
        _fill_txn(out.request_txn, op, depth + 1)
    elif isinstance(op, RangeRequest):
        out.request_range.CopyFrom(_range_to_pb(op))
    elif isinstance(op, PutRequest):
        out.request_put.CopyFrom(_put_to_pb(op))
    elif isinstance(op, DeleteRangeRequest):
        out.request_delete_range.CopyFrom(_delete_to_pb(op))
    else:
        raise WireError(f"raftkv: not a txn operation: {type(op).__name__}")


def _txn_from_pb(msg: rpc_pb2.TxnRequest, depth: int) -> TxnRequest:
    if depth > MAX_TXN_DEPTH:
        raise _too_deep(depth)
    return TxnRequest(
        compare=[compare_from_pb(c) for c in msg.compare],
        success=[_request_op_from_pb(op, depth) for op in msg.success],
        failure=[_request_op_from_pb(op, depth) for op in msg.failure],
    )


def _request_op_from_pb(msg: rpc_pb2.RequestOp, depth: int) -> RequestOp:
    which = msg.WhichOneof("request")
    if which == "request_range":
        return _range_from_pb(msg.request_range)
    if which == "request_put":
        return _put_from_pb(msg.request_put)
    if which == "request_delete_range":
        return _delete_from_pb(msg.request_delete_range)
    if which == "request_txn":
        return _txn_from_pb(msg.request_txn, depth + 1)
    raise EmptyRequestOp()


@_typed_errors
def request_op_to_pb(op: RequestOp) -> rpc_pb2.RequestOp:
    """One txn operation as etcd's ``RequestOp`` (nested txns recursively)."""
    out = rpc_pb2.RequestOp()
    _fill_request_op(out, op, 1)
    return out


@_typed_errors
def request_op_from_pb(msg: rpc_pb2.RequestOp) -> RequestOp:
    return _request_op_from_pb(msg, 1)


@_typed_errors
def request_to_pb(req: Request) -> RequestMessage:
    """The etcdserverpb message for one of the 8 request dataclasses."""
    if isinstance(req, RangeRequest):
        return _range_to_pb(req)
    if isinstance(req, PutRequest):
        return _put_to_pb(req)
    if isinstance(req, DeleteRangeRequest):
        return _delete_to_pb(req)
    if isinstance(req, TxnRequest):
        msg = rpc_pb2.TxnRequest()
        _fill_txn(msg, req, 1)
        return msg
    if isinstance(req, CompactionRequest):
        return rpc_pb2.CompactionRequest(revision=req.revision, physical=req.physical)
    if isinstance(req, LeaseGrantRequest):
        return rpc_pb2.LeaseGrantRequest(TTL=req.ttl, ID=req.id)
    if isinstance(req, LeaseRevokeRequest):
        return rpc_pb2.LeaseRevokeRequest(ID=req.id)
    if isinstance(req, AlarmRequest):
        return rpc_pb2.AlarmRequest(action=req.action, memberID=req.member_id, alarm=req.alarm)
    if isinstance(req, auth.AUTH_REQUESTS):
        return _auth_to_pb(req)
    raise WireError(f"raftkv: not a request: {type(req).__name__}")


@_typed_errors
def request_from_pb(msg: RequestMessage) -> Request:
    """The request dataclass for an etcdserverpb request message."""
    if isinstance(msg, rpc_pb2.RangeRequest):
        return _range_from_pb(msg)
    if isinstance(msg, rpc_pb2.PutRequest):
        return _put_from_pb(msg)
    if isinstance(msg, rpc_pb2.DeleteRangeRequest):
        return _delete_from_pb(msg)
    if isinstance(msg, rpc_pb2.TxnRequest):
        return _txn_from_pb(msg, 1)
    if isinstance(msg, rpc_pb2.CompactionRequest):
        return CompactionRequest(revision=msg.revision, physical=msg.physical)
    if isinstance(msg, rpc_pb2.LeaseGrantRequest):
        return LeaseGrantRequest(ttl=msg.TTL, id=msg.ID)
    if isinstance(msg, rpc_pb2.LeaseRevokeRequest):
        return LeaseRevokeRequest(id=msg.ID)
    if isinstance(msg, rpc_pb2.AlarmRequest):
        return AlarmRequest(_enum(AlarmAction, msg.action, "alarm action"), msg.memberID,
                            _enum(AlarmType, msg.alarm, "alarm type"))
    if type(msg) in _AUTH_FROM_PB:
        return _AUTH_FROM_PB[type(msg)](msg)
    raise WireError(f"raftkv: not a request message: {type(msg).__name__}")


# ---- responses ---------------------------------------------------------------


def _fill_header(out: rpc_pb2.ResponseHeader, revision: int, header: ResponseHeader | None) -> None:
    out.SetInParent()  # etcd always sends a header, even an all-zero one
    out.revision = revision
    if header is not None:
        out.cluster_id = header.cluster_id
        out.member_id = header.member_id
        out.raft_term = header.raft_term


def header_from_pb(msg: rpc_pb2.ResponseHeader) -> ResponseHeader:
    """The non-revision part of a received header."""
    return ResponseHeader(cluster_id=msg.cluster_id, member_id=msg.member_id, raft_term=msg.raft_term)


def _fill_response(out: Message, resp: Response, header: ResponseHeader | None) -> None:
    _fill_header(out.header, resp.revision, header)  # type: ignore[attr-defined]
    if isinstance(resp, RangeResponse):
        for kv in resp.kvs:
            out.kvs.add().CopyFrom(kv_to_pb(kv))  # type: ignore[attr-defined]
        out.more = resp.more  # type: ignore[attr-defined]
        out.count = resp.count  # type: ignore[attr-defined]
    elif isinstance(resp, PutResponse):
        if resp.prev_kv is not None:
            _set_kv(out.prev_kv, resp.prev_kv)  # type: ignore[attr-defined]
    elif isinstance(resp, DeleteRangeResponse):
        out.deleted = resp.deleted  # type: ignore[attr-defined]
        for kv in resp.prev_kvs:
            out.prev_kvs.add().CopyFrom(kv_to_pb(kv))  # type: ignore[attr-defined]
    elif isinstance(resp, TxnResponse):
        out.succeeded = resp.succeeded  # type: ignore[attr-defined]
        for op in resp.responses:
            _fill_response_op(out.responses.add(), op)  # type: ignore[attr-defined]
    elif isinstance(resp, LeaseGrantResponse):
        out.ID = resp.id  # type: ignore[attr-defined]
        out.TTL = resp.ttl  # type: ignore[attr-defined]
    # CompactionResponse / LeaseRevokeResponse: header only


def _fill_response_op(out: rpc_pb2.ResponseOp, op: ResponseOp) -> None:
    if isinstance(op, RangeResponse):
        _fill_response(out.response_range, op, None)
    elif isinstance(op, PutResponse):
        _fill_response(out.response_put, op, None)
    elif isinstance(op, DeleteRangeResponse):
        _fill_response(out.response_delete_range, op, None)
    elif isinstance(op, TxnResponse):
        _fill_response(out.response_txn, op, None)
    else:
        raise WireError(f"raftkv: not a txn operation response: {type(op).__name__}")


_RESPONSE_PB: dict[type, type[Message]] = {
    RangeResponse: rpc_pb2.RangeResponse,
    PutResponse: rpc_pb2.PutResponse,
    DeleteRangeResponse: rpc_pb2.DeleteRangeResponse,
    TxnResponse: rpc_pb2.TxnResponse,
    CompactionResponse: rpc_pb2.CompactionResponse,
    LeaseGrantResponse: rpc_pb2.LeaseGrantResponse,
    LeaseRevokeResponse: rpc_pb2.LeaseRevokeResponse,
}


@_typed_errors
def response_to_pb(resp: Response, header: ResponseHeader | None = None) -> ResponseMessage:
    """The etcdserverpb message for a response dataclass.

    ``header.revision`` is ``resp.revision``; cluster_id, member_id and
    raft_term come from ``header`` (zero when None).  Responses nested in a
    txn get a header holding only their own revision.
    """
    cls = _RESPONSE_PB.get(type(resp))
    if cls is None:
        raise WireError(f"raftkv: not a response: {type(resp).__name__}")
    msg = cls()
    _fill_response(msg, resp, header)
    return msg  # type: ignore[return-value]


@_typed_errors
def response_op_to_pb(op: ResponseOp) -> rpc_pb2.ResponseOp:
    out = rpc_pb2.ResponseOp()
    _fill_response_op(out, op)
    return out


def _response_op_from_pb(msg: rpc_pb2.ResponseOp) -> ResponseOp:
    which = msg.WhichOneof("response")
    if which is None:
        raise WireError("raftkv: ResponseOp holds no response")
    return _response_from_pb(getattr(msg, which))  # type: ignore[return-value]


@_typed_errors
def response_op_from_pb(msg: rpc_pb2.ResponseOp) -> ResponseOp:
    return _response_op_from_pb(msg)


def _response_from_pb(msg: Message) -> Response:
    revision = msg.header.revision  # type: ignore[attr-defined]
    if isinstance(msg, rpc_pb2.RangeResponse):
        return RangeResponse(
            revision=revision, kvs=[kv_from_pb(kv) for kv in msg.kvs], more=msg.more, count=msg.count
        )
    if isinstance(msg, rpc_pb2.PutResponse):
        return PutResponse(
            revision=revision, prev_kv=kv_from_pb(msg.prev_kv) if msg.HasField("prev_kv") else None
        )
    if isinstance(msg, rpc_pb2.DeleteRangeResponse):
        return DeleteRangeResponse(
            revision=revision, deleted=msg.deleted, prev_kvs=[kv_from_pb(kv) for kv in msg.prev_kvs]
        )
    if isinstance(msg, rpc_pb2.TxnResponse):
        return TxnResponse(
            revision=revision,
            succeeded=msg.succeeded,
            responses=[_response_op_from_pb(op) for op in msg.responses],
        )
    if isinstance(msg, rpc_pb2.CompactionResponse):
        return CompactionResponse(revision=revision)
    if isinstance(msg, rpc_pb2.LeaseGrantResponse):
        return LeaseGrantResponse(revision=revision, id=msg.ID, ttl=msg.TTL)
    if isinstance(msg, rpc_pb2.LeaseRevokeResponse):
        return LeaseRevokeResponse(revision=revision)
    raise WireError(f"raftkv: not a response message: {type(msg).__name__}")


@_typed_errors
def response_from_pb(msg: ResponseMessage) -> Response:
    """The response dataclass for an etcdserverpb response message (the
    header's revision becomes ``revision``; see ``header_from_pb`` for the
    rest of the header)."""
    return _response_from_pb(msg)


@_typed_errors
def watch_response_to_pb(resp: WatchResponse, header: ResponseHeader | None = None) -> rpc_pb2.WatchResponse:
    """etcd's WatchResponse (``created`` / ``fragment`` left false)."""
    msg = rpc_pb2.WatchResponse(
        watch_id=resp.watch_id,
        canceled=resp.canceled,
        compact_revision=resp.compact_revision,
        cancel_reason=resp.cancel_reason,
    )
    _fill_header(msg.header, resp.revision, header)
    for event in resp.events:
        msg.events.append(event_to_pb(event))
    return msg


@_typed_errors
def watch_response_from_pb(msg: rpc_pb2.WatchResponse) -> WatchResponse:
    return WatchResponse(
        watch_id=msg.watch_id,
        revision=msg.header.revision,
        events=[event_from_pb(e) for e in msg.events],
        compact_revision=msg.compact_revision,
        canceled=msg.canceled,
        cancel_reason=msg.cancel_reason,
    )


# ---- generic -----------------------------------------------------------------


def to_pb(obj: Any, header: ResponseHeader | None = None) -> Message:
    """Any supported dataclass to its protobuf message (``header`` applies
    to responses only)."""
    if isinstance(obj, KeyValue):
        return kv_to_pb(obj)
    if isinstance(obj, Event):
        return event_to_pb(obj)
    if isinstance(obj, Compare):
        return compare_to_pb(obj)
    if isinstance(obj, WatchResponse):
        return watch_response_to_pb(obj, header)
    if type(obj) in _RESPONSE_PB:
        return response_to_pb(obj, header)
    return request_to_pb(obj)


def from_pb(msg: Message) -> Any:
    """Any supported protobuf message to its dataclass."""
    if isinstance(msg, kv_pb2.KeyValue):
        return kv_from_pb(msg)
    if isinstance(msg, kv_pb2.Event):
        return event_from_pb(msg)
    if isinstance(msg, rpc_pb2.Compare):
        return compare_from_pb(msg)
    if isinstance(msg, rpc_pb2.RequestOp):
        return request_op_from_pb(msg)
    if isinstance(msg, rpc_pb2.ResponseOp):
        return response_op_from_pb(msg)
    if isinstance(msg, rpc_pb2.WatchResponse):
        return watch_response_from_pb(msg)
    if type(msg) in _RESPONSE_PB.values():
        return response_from_pb(msg)  # type: ignore[arg-type]
    return request_from_pb(msg)  # type: ignore[arg-type]


# ---- log-entry codec ---------------------------------------------------------

#: Tag byte of each request type in an encoded log entry.
REQUEST_TAGS: dict[type, int] = {
    RangeRequest: 0x01,
    PutRequest: 0x02,
    DeleteRangeRequest: 0x03,
    TxnRequest: 0x04,
    CompactionRequest: 0x05,
    LeaseGrantRequest: 0x06,
    LeaseRevokeRequest: 0x07,
    AlarmRequest: 0x08,
}

_TAG_MESSAGE: dict[int, type[Message]] = {
    0x01: rpc_pb2.RangeRequest,
    0x02: rpc_pb2.PutRequest,
    0x03: rpc_pb2.DeleteRangeRequest,
    0x04: rpc_pb2.TxnRequest,
    0x05: rpc_pb2.CompactionRequest,
    0x06: rpc_pb2.LeaseGrantRequest,
    0x07: rpc_pb2.LeaseRevokeRequest,
    0x08: rpc_pb2.AlarmRequest,
}


# ---- auth requests -------------------------------------------------------------

def _permission_to_pb(p: auth.Permission) -> auth_pb2.Permission:
    return auth_pb2.Permission(permType=p.type, key=p.key, range_end=p.range_end)


def _permission_from_pb(msg: auth_pb2.Permission) -> auth.Permission:
    return auth.Permission(msg.key, msg.range_end, _enum(auth.PermissionType, msg.permType, "permission type"))


def _auth_to_pb(req: object) -> Message:
    r = rpc_pb2
    if isinstance(req, auth.AuthenticateRequest):
        return r.AuthenticateRequest(name=req.name, password=req.token)
    if isinstance(req, auth.UserAddRequest):
        return r.AuthUserAddRequest(name=req.name, password=req.password_hash.decode("ascii"),
                                    options=auth_pb2.UserAddOptions(no_password=req.no_password))
    if isinstance(req, auth.UserChangePasswordRequest):
        return r.AuthUserChangePasswordRequest(name=req.name, password=req.password_hash.decode("ascii"))
    if isinstance(req, auth.UserGrantRoleRequest):
        return r.AuthUserGrantRoleRequest(user=req.user, role=req.role)
    if isinstance(req, auth.UserRevokeRoleRequest):
        return r.AuthUserRevokeRoleRequest(name=req.name, role=req.role)
    if isinstance(req, auth.RoleGrantPermissionRequest):
        return r.AuthRoleGrantPermissionRequest(name=req.name, perm=_permission_to_pb(req.permission))
    if isinstance(req, auth.RoleRevokePermissionRequest):
        return r.AuthRoleRevokePermissionRequest(role=req.role, key=req.key, range_end=req.range_end)
    message = _AUTH_PB[type(req)]
    return message(**vars(req))  # the rest carry at most a name, under etcd's field name


_AUTH_PB: dict[type, type[Message]] = {
    auth.AuthEnableRequest: rpc_pb2.AuthEnableRequest, auth.AuthDisableRequest: rpc_pb2.AuthDisableRequest,
    auth.AuthenticateRequest: rpc_pb2.AuthenticateRequest, auth.UserAddRequest: rpc_pb2.AuthUserAddRequest,
    auth.UserGetRequest: rpc_pb2.AuthUserGetRequest, auth.UserListRequest: rpc_pb2.AuthUserListRequest,
    auth.UserDeleteRequest: rpc_pb2.AuthUserDeleteRequest,
    auth.UserChangePasswordRequest: rpc_pb2.AuthUserChangePasswordRequest,
    auth.UserGrantRoleRequest: rpc_pb2.AuthUserGrantRoleRequest,
    auth.UserRevokeRoleRequest: rpc_pb2.AuthUserRevokeRoleRequest, auth.RoleAddRequest: rpc_pb2.AuthRoleAddRequest,
    auth.RoleGetRequest: rpc_pb2.AuthRoleGetRequest, auth.RoleListRequest: rpc_pb2.AuthRoleListRequest,
    auth.RoleDeleteRequest: rpc_pb2.AuthRoleDeleteRequest,
    auth.RoleGrantPermissionRequest: rpc_pb2.AuthRoleGrantPermissionRequest,
    auth.RoleRevokePermissionRequest: rpc_pb2.AuthRoleRevokePermissionRequest,
}

_AUTH_FROM_PB: dict[type, Callable[[Any], object]] = {
    rpc_pb2.AuthEnableRequest: lambda m: auth.AuthEnableRequest(),
    rpc_pb2.AuthDisableRequest: lambda m: auth.AuthDisableRequest(),
    rpc_pb2.AuthenticateRequest: lambda m: auth.AuthenticateRequest(m.name, m.password),
    rpc_pb2.AuthUserAddRequest: lambda m: auth.UserAddRequest(m.name, m.password.encode(), m.options.no_password),
    rpc_pb2.AuthUserGetRequest: lambda m: auth.UserGetRequest(m.name),
    rpc_pb2.AuthUserListRequest: lambda m: auth.UserListRequest(),
    rpc_pb2.AuthUserDeleteRequest: lambda m: auth.UserDeleteRequest(m.name),
    rpc_pb2.AuthUserChangePasswordRequest: lambda m: auth.UserChangePasswordRequest(m.name, m.password.encode()),
    rpc_pb2.AuthUserGrantRoleRequest: lambda m: auth.UserGrantRoleRequest(m.user, m.role),
    rpc_pb2.AuthUserRevokeRoleRequest: lambda m: auth.UserRevokeRoleRequest(m.name, m.role),
    rpc_pb2.AuthRoleAddRequest: lambda m: auth.RoleAddRequest(m.name),
    rpc_pb2.AuthRoleGetRequest: lambda m: auth.RoleGetRequest(m.role),
    rpc_pb2.AuthRoleListRequest: lambda m: auth.RoleListRequest(),
    rpc_pb2.AuthRoleDeleteRequest: lambda m: auth.RoleDeleteRequest(m.role),
    rpc_pb2.AuthRoleGrantPermissionRequest:
        lambda m: auth.RoleGrantPermissionRequest(m.name, _permission_from_pb(m.perm)),
    rpc_pb2.AuthRoleRevokePermissionRequest:
        lambda m: auth.RoleRevokePermissionRequest(m.role, m.key, m.range_end),
}

for _tag, (_request, _message) in enumerate(_AUTH_PB.items(), start=0x09):
    REQUEST_TAGS[_request] = _tag
    _TAG_MESSAGE[_tag] = _message
AUTH_TAGS = {request: REQUEST_TAGS[request] for request in _AUTH_PB}


# a request checked against the auth store: this tag, the auth revision
# (8 bytes, big-endian), then the request's own entry
AUTHORIZED_TAG = 0x40


def encode_request(req: Request | Authorized) -> bytes:
    """A log entry: the request's tag byte, then its protobuf serialization.

    Raises WireError for anything that is not one of the 8 request types or
    cannot be represented (out-of-range ints, bad enums, nesting beyond
    MAX_TXN_DEPTH); whatever it returns, ``decode_request`` accepts.
    """
    if isinstance(req, Authorized):
        if not 0 <= req.auth_revision < 2**64:
            raise WireError(f"raftkv: auth revision out of range: {req.auth_revision}")
        return bytes((AUTHORIZED_TAG,)) + req.auth_revision.to_bytes(8, "big") + encode_request(req.request)
    tag = REQUEST_TAGS.get(type(req))
    if tag is None:
        raise WireError(f"raftkv: not a request: {type(req).__name__}")
    return bytes((tag,)) + request_to_pb(req).SerializeToString()


def decode_request(data: bytes) -> Request | Authorized:
    """The request in a log entry made by ``encode_request``.

    Raises WireError for an empty entry, an unassigned tag, a payload that is
    not a valid protobuf of the tagged type, or one that does not convert
    (unknown enum value, empty txn operation, nesting beyond MAX_TXN_DEPTH).
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"decode_request needs bytes, not {type(data).__name__}")
    data = bytes(data)
    if not data:
        raise WireError("raftkv: empty log entry")
    if data[0] == AUTHORIZED_TAG:
        if len(data) < 10 or data[9] == AUTHORIZED_TAG:
            raise WireError("raftkv: corrupt authorized log entry")
        return Authorized(decode_request(data[9:]), int.from_bytes(data[1:9], "big"))
    cls = _TAG_MESSAGE.get(data[0])
    if cls is None:
        raise WireError(f"raftkv: unknown log entry tag 0x{data[0]:02x}")
    try:
        msg = cls.FromString(data[1:])
    except (DecodeError, ValueError, RecursionError) as exc:
        raise WireError(f"raftkv: corrupt {cls.DESCRIPTOR.name} log entry: {exc}") from exc
    return request_from_pb(msg)  # type: ignore[arg-type]
