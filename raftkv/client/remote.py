"""``raftkv.Client(endpoints)``: the same interface, over etcd's gRPC API.

Works against raftkv and against etcd itself. A request that finds its
endpoint unreachable moves on to the next one.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from typing import Any

import grpc

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv._proto.raftkvpb import store_pb2, store_pb2_grpc
from raftkv.client.api import KVClient, LeaseTTL, Status, Watch
from raftkv.errors import (
    Compacted,
    DuplicateKey,
    EmptyKey,
    FutureRevision,
    KeyNotFound,
    LeaderChanged,
    LearnerNotReady,
    LeaseExists,
    LeaseNotFound,
    LeaseProvided,
    LeaseTTLTooLarge,
    MemberNotFound,
    MemberNotLearner,
    NoLeader,
    NoSpace,
    NotEnoughStartedMembers,
    NotSupported,
    NotSupportedForLearner,
    PeerURLExists,
    RaftKVError,
    RequestTimedOut,
    RequestTooLarge,
    StoreClosed,
    TooManyOps,
    TooManyRequests,
    Unavailable,
    ValueProvided,
)
from raftkv.mvcc.auth import AUTH_ERRORS, AuthOldRevision
from raftkv.mvcc.requests import (
    AlarmMember,
    AlarmRequest,
    AlarmResponse,
    AlarmType,
    CompactionRequest,
    DeleteRangeRequest,
    LeaseGrantRequest,
    LeaseGrantResponse,
    LeaseRevokeRequest,
    LeaseRevokeResponse,
    PutRequest,
    RangeRequest,
    TxnRequest,
)
from raftkv.mvcc.watch import WatchResponse
from raftkv.raft.membership import MemberRecord
from raftkv.wire import request_to_pb, response_from_pb, watch_response_from_pb

log = logging.getLogger(__name__)

_ERRORS = {cls.message: cls for cls in (
    *AUTH_ERRORS, Compacted, DuplicateKey, EmptyKey, FutureRevision, KeyNotFound, LeaderChanged, LeaseExists,
    LeaseNotFound, LeaseProvided, LeaseTTLTooLarge, MemberNotFound, NoLeader, PeerURLExists,
    NotSupportedForLearner, MemberNotLearner, LearnerNotReady, NoSpace, NotEnoughStartedMembers,
    RequestTimedOut, RequestTooLarge, TooManyOps, TooManyRequests, ValueProvided,
)}

_METHODS = {
    RangeRequest: "Range",
    PutRequest: "Put",
    DeleteRangeRequest: "DeleteRange",
    TxnRequest: "Txn",
    CompactionRequest: "Compact",
}


def typed_error(error: grpc.RpcError) -> RaftKVError:
    message = error.details() or ""
    cls = _ERRORS.get(message)
    if cls is not None:
        return cls()
    if error.code() == grpc.StatusCode.UNAVAILABLE:
        return Unavailable(message or "unavailable")
    if error.code() == grpc.StatusCode.UNIMPLEMENTED:
        return NotSupported(message or "not supported by the server")
    return RaftKVError(message or str(error.code()))


def _asks_for_a_new_token(error: grpc.RpcError) -> bool:
    """The token expired, or the request was checked before the users and
    roles last changed: authenticate again and retry (etcd's client does)."""
    return error.code() == grpc.StatusCode.UNAUTHENTICATED or error.details() == AuthOldRevision.message


@dataclass
class ReportedMember(MemberRecord):
    """A member as the server reports it: its ID is the server's, whatever
    scheme the server derives IDs with (etcd's differs from raftkv's)."""

    reported_id: int = 0

    @property
    def id(self) -> int:
        return self.reported_id


def _record(member: rpc_pb2.Member) -> ReportedMember:
    address = _target(member.peerURLs[0]) if member.peerURLs else ""
    return ReportedMember(address, name=member.name, peer_urls=list(member.peerURLs),
                          client_urls=list(member.clientURLs), is_learner=member.isLearner,
                          reported_id=member.ID)


def _target(endpoint: str) -> str:
    for scheme in ("http://", "https://"):
        if endpoint.startswith(scheme):
            return endpoint[len(scheme):]
    return endpoint


class _RemoteWatch(Watch):
    def __init__(self, client: Client, request: rpc_pb2.WatchCreateRequest) -> None:
        self._requests: queue.Queue = queue.Queue()
        self._responses: queue.Queue = queue.Queue()
        self._canceled = False
        self.id = -1
        self._requests.put(rpc_pb2.WatchRequest(create_request=request))
        stub = rpc_pb2_grpc.WatchStub(client.channel())
        self._call = stub.Watch(iter(self._requests.get, None), metadata=client.metadata())
        created = next(self._call)
        self.id = created.watch_id
        if created.canceled:
            self._canceled = True
            raise RaftKVError(created.cancel_reason or "watch refused")
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name=f"raftkv-remote-watch-{self.id}")
        self._reader.start()

    def _read(self) -> None:
        try:
            for message in self._call:
                response = watch_response_from_pb(message)
                if response.canceled and response.compact_revision and not response.cancel_reason:
                    response.cancel_reason = Compacted.message
                self._responses.put(response)
                if response.canceled:
                    break
        except grpc.RpcError as e:
            if not self._canceled:
                log.info("watch stream ended watch_id=%d error=%s", self.id, e.code())
        self._responses.put(None)

    @property
    def canceled(self) -> bool:
        return self._canceled

    def next_response(self, timeout: float | None = None) -> WatchResponse | None:
        try:
            response = self._responses.get(timeout=timeout)
        except queue.Empty:
            return None
        if response is None:
            self._responses.put(None)
            self._canceled = True
        return response

    def cancel(self) -> None:
        """Ends the call even when the server canceled the watch first; the
        reader has stopped when this returns."""
        if not self._canceled:
            self._canceled = True
            self._requests.put(rpc_pb2.WatchRequest(
                cancel_request=rpc_pb2.WatchCancelRequest(watch_id=self.id)))
        self._requests.put(None)
        self._call.cancel()
        if threading.current_thread() is not self._reader:
            self._reader.join(timeout=5.0)


_STUBS = {
    "KV": rpc_pb2_grpc.KVStub, "Lease": rpc_pb2_grpc.LeaseStub, "Watch": rpc_pb2_grpc.WatchStub,
    "Maintenance": rpc_pb2_grpc.MaintenanceStub, "Cluster": rpc_pb2_grpc.ClusterStub,
    "Auth": rpc_pb2_grpc.AuthStub, "Store": store_pb2_grpc.StoreStub,
}


class Client(KVClient):
    """With ``user`` and ``password``, every call carries a token of that
    user (etcd's auth), fetched at the first call and again when it expires."""

    def __init__(self, endpoints: list[str] | str, *, timeout: float = 10.0,
                 credentials: grpc.ChannelCredentials | None = None,
                 user: str | None = None, password: str | None = None) -> None:
        if isinstance(endpoints, str):
            endpoints = [e for e in endpoints.split(",") if e]
        if not endpoints:
            raise ValueError("at least one endpoint is needed")
        self.endpoints = [_target(e) for e in endpoints]
        self.timeout = timeout
        self._credentials = credentials
        self._current = 0
        self._channels: dict[str, grpc.Channel] = {}
        self._lock = threading.Lock()
        self._closed = False
        self._user, self._password = user, password
        self._token: str | None = None

    def metadata(self) -> list[tuple[str, str]]:
        """What every call carries: the auth token, when the client has a user."""
        if self._user is None:
            return []
        if self._token is None:
            self._token = self.authenticate(self._user, self._password or "")
        return [("token", self._token)]

    def authenticate(self, name: str, password: str) -> str:
        stub = rpc_pb2_grpc.AuthStub(self.channel())
        try:
            return stub.Authenticate(rpc_pb2.AuthenticateRequest(name=name, password=password),
                                     timeout=self.timeout).token
        except grpc.RpcError as e:
            raise typed_error(e) from None

    @property
    def current_index(self) -> int:
        """The endpoint the client tries first."""
        return self._current

    def rotate(self) -> None:
        """Make the next endpoint the one tried first."""
        self._current = (self._current + 1) % len(self.endpoints)

    def channel(self, index: int | None = None) -> grpc.Channel:
        """The gRPC channel to endpoint ``index`` (the current one by default),
        for calls the KVClient interface does not offer."""
        with self._lock:
            if self._closed:
                raise StoreClosed()
            endpoint = self.endpoints[self._current if index is None else index]
            channel = self._channels.get(endpoint)
            if channel is None:
                options = [("grpc.max_receive_message_length", 2**31 - 1)]
                if self._credentials is None:
                    channel = grpc.insecure_channel(endpoint, options=options)
                else:
                    channel = grpc.secure_channel(endpoint, self._credentials, options=options)
                self._channels[endpoint] = channel
            return channel

    def call(self, service: str, method: str, message):
        """A unary call of etcd's API, or of raftkv's Store service
        (``service``/``method`` by name), on the current endpoint, failing
        over while endpoints are unreachable."""
        last: grpc.RpcError | None = None
        renewed = False
        attempt = 0
        while attempt < len(self.endpoints):
            index = (self._current + attempt) % len(self.endpoints)
            stub = _STUBS[service](self.channel(index))
            try:
                response = getattr(stub, method)(message, timeout=self.timeout, metadata=self.metadata())
            except grpc.RpcError as e:
                if self._user is not None and not renewed and _asks_for_a_new_token(e):
                    self._token, renewed = None, True  # once, as etcd's client does
                    continue
                if e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED) \
                        and len(self.endpoints) > 1:
                    last = e
                    attempt += 1
                    continue
                raise typed_error(e) from None
            self._current = index
            return response
        raise typed_error(last) from None

    def execute(self, request: Any) -> Any:
        if isinstance(request, LeaseGrantRequest):
            response = self.call("Lease", "LeaseGrant", rpc_pb2.LeaseGrantRequest(TTL=request.ttl, ID=request.id))
            return LeaseGrantResponse(revision=response.header.revision, id=response.ID, ttl=response.TTL)
        if isinstance(request, LeaseRevokeRequest):
            response = self.call("Lease", "LeaseRevoke", rpc_pb2.LeaseRevokeRequest(ID=request.id))
            return LeaseRevokeResponse(revision=response.header.revision)
        if isinstance(request, AlarmRequest):
            response = self.call("Maintenance", "Alarm", request_to_pb(request))
            return AlarmResponse([AlarmMember(m.memberID, AlarmType(m.alarm)) for m in response.alarms])
        method = _METHODS[type(request)]
        return response_from_pb(self.call("KV", method, request_to_pb(request)))

    def lease_keep_alive(self, lease_id: int) -> int:
        stub = rpc_pb2_grpc.LeaseStub(self.channel())
        try:
            responses = stub.LeaseKeepAlive(iter([rpc_pb2.LeaseKeepAliveRequest(ID=lease_id)]),
                                            timeout=self.timeout, metadata=self.metadata())
            ttl = next(iter(responses)).TTL
        except grpc.RpcError as e:
            raise typed_error(e) from None
        if ttl <= 0:
            raise LeaseNotFound()
        return ttl

    def lease_time_to_live(self, lease_id: int, keys: bool = False) -> LeaseTTL:
        r = self.call("Lease", "LeaseTimeToLive", rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id, keys=keys))
        return LeaseTTL(id=r.ID, ttl=r.TTL, granted_ttl=r.grantedTTL, keys=list(r.keys))

    def leases(self) -> list[int]:
        return [lease.ID for lease in self.call("Lease", "LeaseLeases", rpc_pb2.LeaseLeasesRequest()).leases]

    def open_watch(self, key: bytes, range_end: bytes, start_revision: int, prev_kv: bool,
                   no_put: bool, no_delete: bool, progress_notify: bool) -> Watch:
        filters = []
        if no_put:
            filters.append(rpc_pb2.WatchCreateRequest.NOPUT)
        if no_delete:
            filters.append(rpc_pb2.WatchCreateRequest.NODELETE)
        request = rpc_pb2.WatchCreateRequest(
            key=key, range_end=range_end, start_revision=start_revision, prev_kv=prev_kv,
            filters=filters, progress_notify=progress_notify)
        return _RemoteWatch(self, request)

    def status(self) -> Status:
        """etcd's Status, with the counts raftkv's Store service adds; from
        etcd itself (no such service) the counts are -1 and the compaction
        revision 0."""
        r = self.call("Maintenance", "Status", rpc_pb2.StatusRequest())
        status = Status(
            version=r.version, member_id=r.header.member_id, leader=r.leader, raft_term=r.raftTerm,
            raft_index=r.raftIndex, revision=r.header.revision, compact_revision=0,
            key_count=-1, lease_count=-1, watcher_count=-1, is_learner=r.isLearner,
            raft_applied_index=r.raftAppliedIndex, db_size=r.dbSize, db_size_in_use=r.dbSizeInUse,
        )
        try:
            counts = self.call("Store", "Counts", store_pb2.CountsRequest())
        except NotSupported:
            return status
        if counts.member_id == status.member_id:  # not another member's, after a failover
            status.revision = counts.revision
            status.compact_revision = counts.compact_revision
            status.key_count = counts.key_count
            status.lease_count = counts.lease_count
            status.watcher_count = counts.watcher_count
        return status

    def defragment(self) -> None:
        self.call("Maintenance", "Defragment", rpc_pb2.DefragmentRequest())

    def members(self) -> list[MemberRecord]:
        return [_record(m) for m in self.call("Cluster", "MemberList", rpc_pb2.MemberListRequest()).members]

    def member_add(self, peer_urls: list[str], is_learner: bool = False) -> MemberRecord:
        added = self.call("Cluster", "MemberAdd",
                           rpc_pb2.MemberAddRequest(peerURLs=peer_urls, isLearner=is_learner)).member
        return _record(added)

    def member_promote(self, id_: int) -> None:
        self.call("Cluster", "MemberPromote", rpc_pb2.MemberPromoteRequest(ID=id_))

    def member_remove(self, id_: int) -> None:
        self.call("Cluster", "MemberRemove", rpc_pb2.MemberRemoveRequest(ID=id_))

    def close(self) -> None:
        with self._lock:
            self._closed = True
            channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            channel.close()
