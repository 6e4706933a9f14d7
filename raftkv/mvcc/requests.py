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


def request_size(request: object) -> int:
    """An upper estimate of the request's protobuf encoding, in bytes.

    Used to enforce etcd's --max-request-bytes before anything is applied.
    """
    if isinstance(request, PutRequest):
        return len(request.key) + len(request.value) + 32
    if isinstance(request, (RangeRequest, DeleteRangeRequest)):
        return len(request.key) + len(request.range_end) + 48
    if isinstance(request, Compare):
        operand = request.operand if isinstance(request.operand, bytes) else b""
        return len(request.key) + len(request.range_end) + len(operand) + 24
    if isinstance(request, TxnRequest):
        parts = [*request.compare, *request.success, *request.failure]
        return sum(request_size(p) + 8 for p in parts) + 8
    return 32
