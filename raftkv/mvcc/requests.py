"""Requests the state machine applies and the responses it returns.

They mirror etcd's etcdserverpb messages field for field, so the gRPC layer
converts one to the other mechanically and a replicated log can carry them.
``revision`` in a response is etcd's ``header.revision``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Union

from raftkv.mvcc.types import KeyValue


class SortOrder(enum.IntEnum):
    NONE = 0
    ASCEND = 1
    DESCEND = 2


class SortTarget(enum.IntEnum):
    KEY = 0
    VERSION = 1
    CREATE = 2
    MOD = 3
    VALUE = 4


class CompareResult(enum.IntEnum):
    EQUAL = 0
    GREATER = 1
    LESS = 2
    NOT_EQUAL = 3


class CompareTarget(enum.IntEnum):
    VERSION = 0
    CREATE = 1
    MOD = 2
    VALUE = 3
    LEASE = 4


@dataclass
class RangeRequest:
    key: bytes
    range_end: bytes = b""
    limit: int = 0
    revision: int = 0
    sort_order: SortOrder = SortOrder.NONE
    sort_target: SortTarget = SortTarget.KEY
    serializable: bool = False
    keys_only: bool = False
    count_only: bool = False
    min_mod_revision: int = 0
    max_mod_revision: int = 0
    min_create_revision: int = 0
    max_create_revision: int = 0


@dataclass
class PutRequest:
    key: bytes
    value: bytes = b""
    lease: int = 0
    prev_kv: bool = False
    ignore_value: bool = False
    ignore_lease: bool = False


@dataclass
class DeleteRangeRequest:
    key: bytes
    range_end: bytes = b""
    prev_kv: bool = False


@dataclass
class Compare:
    """A txn guard: ``target`` of the key (or of every key in the range)
    compared with ``operand`` by ``result``."""

    key: bytes
    target: CompareTarget
    result: CompareResult
    operand: bytes | int = 0
    range_end: bytes = b""


@dataclass
class TxnRequest:
    compare: list[Compare] = field(default_factory=list)
    success: list["RequestOp"] = field(default_factory=list)
    failure: list["RequestOp"] = field(default_factory=list)


RequestOp = Union[RangeRequest, PutRequest, DeleteRangeRequest, TxnRequest]


@dataclass
class CompactionRequest:
    revision: int
    physical: bool = False


@dataclass
class LeaseGrantRequest:
    ttl: int
    id: int


@dataclass
class LeaseRevokeRequest:
    id: int


class AlarmType(enum.IntEnum):
    NONE = 0  # in a request: every kind
    NOSPACE = 1
    CORRUPT = 2


class AlarmAction(enum.IntEnum):
    GET = 0
    ACTIVATE = 1
    DEACTIVATE = 2


@dataclass(frozen=True)
class AlarmMember:
    member_id: int
    alarm: AlarmType

    def __str__(self) -> str:
        # how etcd prints one (etcdctl alarm list, Status errors)
        return f"memberID:{self.member_id} alarm:{self.alarm.name} "


@dataclass
class AlarmRequest:
    action: AlarmAction = AlarmAction.GET
    member_id: int = 0
    alarm: AlarmType = AlarmType.NONE


@dataclass
class RangeResponse:
    revision: int
    kvs: list[KeyValue] = field(default_factory=list)
    more: bool = False
    count: int = 0


@dataclass
class PutResponse:
    revision: int
    prev_kv: KeyValue | None = None


@dataclass
class DeleteRangeResponse:
    revision: int
    deleted: int = 0
    prev_kvs: list[KeyValue] = field(default_factory=list)


@dataclass
class TxnResponse:
    revision: int
    succeeded: bool
    responses: list["ResponseOp"] = field(default_factory=list)


ResponseOp = Union[RangeResponse, PutResponse, DeleteRangeResponse, TxnResponse]


@dataclass
class CompactionResponse:
    revision: int


@dataclass
class LeaseGrantResponse:
    revision: int
    id: int
    ttl: int


@dataclass
class LeaseRevokeResponse:
    revision: int


@dataclass
class AlarmResponse:
    """The alarms raised (GET), or the one activated or deactivated; etcd
    sends no header with it."""

    alarms: list[AlarmMember] = field(default_factory=list)


def _varint(n: int) -> int:
    if n < 0:
        return 10  # negative int64s take ten bytes
    size = 1
    while n >= 0x80:
        n >>= 7
        size += 1
    return size


def _bytes_field(data: bytes, tag: int = 1) -> int:
    return tag + _varint(len(data)) + len(data) if data else 0


def _int_field(n: int) -> int:
    return 1 + _varint(n) if n else 0


def _message_field(body: int) -> int:
    return 1 + _varint(body) + body


def _body_size(request: object) -> int:
    """The size of the request's protobuf encoding (etcd's message)."""
    if isinstance(request, PutRequest):
        return (_bytes_field(request.key) + _bytes_field(request.value) + _int_field(request.lease)
                + 2 * (request.prev_kv + request.ignore_value + request.ignore_lease))
    if isinstance(request, RangeRequest):
        return (_bytes_field(request.key) + _bytes_field(request.range_end)
                + sum(_int_field(n) for n in (
                    request.limit, request.revision, request.sort_order, request.sort_target,
                    request.min_mod_revision, request.max_mod_revision,
                    request.min_create_revision, request.max_create_revision))
                + 2 * (request.serializable + request.keys_only + request.count_only))
    if isinstance(request, DeleteRangeRequest):
        return _bytes_field(request.key) + _bytes_field(request.range_end) + 2 * request.prev_kv
    if isinstance(request, Compare):
        operand = request.operand
        union = (1 + _varint(len(operand)) + len(operand)) if isinstance(operand, bytes) \
            else 1 + _varint(int(operand))
        return (_int_field(request.result) + _int_field(request.target) + _bytes_field(request.key)
                + union + _bytes_field(request.range_end, tag=2))
    if isinstance(request, TxnRequest):
        return sum(
            _message_field(_message_field(_body_size(part)) if not isinstance(part, Compare)
                           else _body_size(part))
            for part in (*request.compare, *request.success, *request.failure))
    if isinstance(request, CompactionRequest):
        return _int_field(request.revision) + 2 * request.physical
    if isinstance(request, LeaseGrantRequest):
        return _int_field(request.ttl) + _int_field(request.id)
    if isinstance(request, LeaseRevokeRequest):
        return _int_field(request.id)
    if isinstance(request, AlarmRequest):
        return _int_field(request.action) + _int_field(request.member_id) + _int_field(request.alarm)
    return 0


# etcd wraps a replicated request in an InternalRaftRequest whose header
# carries a request id: 2 tag bytes, 1 length byte, 1 tag byte, 9 varint bytes.
_RAFT_HEADER_SIZE = 13


def request_size(request: object) -> int:
    """Bytes etcd counts against --max-request-bytes: the request as etcd
    proposes it to Raft (its encoding inside an InternalRaftRequest)."""
    return _RAFT_HEADER_SIZE + _message_field(_body_size(request))
