"""The MVCC state machine: keys, revisions, history, txns, leases and watch.

Pure Python with no I/O; replication and the network wrap it from outside.
"""

from raftkv.mvcc.requests import (
    AlarmAction,
    AlarmMember,
    AlarmRequest,
    AlarmResponse,
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
from raftkv.mvcc.store import KVStore, StoreLimits
from raftkv.mvcc.types import Event, EventType, KeyValue
from raftkv.mvcc.watch import WatchHub, Watcher, WatchResponse

__all__ = [
    "AlarmAction", "AlarmMember", "AlarmRequest", "AlarmResponse", "AlarmType",
    "CompactionRequest", "CompactionResponse", "Compare", "CompareResult", "CompareTarget",
    "DeleteRangeRequest", "DeleteRangeResponse", "Event", "EventType", "KVStore", "KeyValue",
    "LeaseGrantRequest", "LeaseGrantResponse", "LeaseRevokeRequest", "LeaseRevokeResponse",
    "PutRequest", "PutResponse", "RangeRequest", "RangeResponse", "RequestOp", "ResponseOp",
    "SortOrder", "SortTarget", "StoreLimits", "TxnRequest", "TxnResponse", "WatchHub",
    "WatchResponse", "Watcher",
]
