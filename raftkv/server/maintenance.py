"""etcdserverpb.Maintenance: status and housekeeping of one member."""

from __future__ import annotations

import logging
import tempfile

import grpc

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv.client import ops
from raftkv.errors import Compacted, FutureRevision, NoLeader, RaftKVError
from raftkv.mvcc.auth import AdminPermissionDenied
from raftkv.mvcc.requests import AlarmAction, AlarmRequest, AlarmType
from raftkv.server import hashing, snapshot
from raftkv.server.aio import Blocking
from raftkv.server.context import ServerContext, grpc_errors
from raftkv.wire import _fill_header

log = logging.getLogger(__name__)

# The etcd API version raftkv speaks; etcd clients read it from Status.
ETCD_API_VERSION = "3.4.23"

# How long MoveLeader waits for the transferee to win, when the caller set no deadline.
MOVE_LEADER_TIMEOUT = 5.0


class MaintenanceService(rpc_pb2_grpc.MaintenanceServicer):
    def __init__(self, ctx: ServerContext, blocking: Blocking) -> None:
        self._ctx = ctx
        self._blocking = blocking

    @grpc_errors
    def Status(self, request, context):
        status = self._ctx.kv.status()
        response = rpc_pb2.StatusResponse(
            version=ETCD_API_VERSION,
            dbSize=status.db_size,
            leader=status.leader,
            raftIndex=status.raft_index,
            raftTerm=status.raft_term,
            raftAppliedIndex=status.raft_applied_index,
            dbSizeInUse=status.db_size_in_use,
            isLearner=status.is_learner,
        )
        if not status.leader:
            response.errors.append(NoLeader.message)  # as etcd reports it
        with self._ctx.local_store() as store:
            alarms = store.alarms.raised() if store is not None else []
        response.errors.extend(str(alarm) for alarm in alarms)
        _fill_header(response.header, status.revision, self._ctx.header())
        return response

    # ---- hashes ------------------------------------------------------------------

    @grpc_errors
    def Hash(self, request, context):
        self._ctx.check_admin(context, AdminPermissionDenied)
        ctx = self._ctx
        with ctx.local_store() as store:
            result = hashing.hash_all(store) if store is not None else None
        if result is None:
            result = self._hash_by_reads(0)
        response = rpc_pb2.HashResponse(hash=result.hash)
        _fill_header(response.header, result.revision, ctx.header())
        return response

    @grpc_errors
    def HashKV(self, request, context):
        self._ctx.check_admin(context, AdminPermissionDenied)
        ctx = self._ctx
        with ctx.local_store() as store:
            result = hashing.hash_kv(store, request.revision) if store is not None else None
        if result is None:
            result = self._hash_by_reads(request.revision)
        response = rpc_pb2.HashKVResponse(hash=result.hash, compact_revision=result.compact_revision)
        _fill_header(response.header, result.revision, ctx.header())
        return response

    def _hash_by_reads(self, revision: int) -> hashing.KVHash:
        """Without the store in this process: the live keys at ``revision``."""
        status = self._ctx.kv.status()
        if revision > 0 and revision <= status.compact_revision:
            raise Compacted()
        if revision > status.revision:
            raise FutureRevision()
        response = self._ctx.kv.execute(ops.get(b"", prefix=True, revision=max(revision, 0)))
        return hashing.KVHash(hashing.hash_kvs(response.kvs), response.revision,
                              status.compact_revision)

    # ---- snapshot ----------------------------------------------------------------

    async def Snapshot(self, request, context):
        """The state at one revision, written to a temporary file first and
        streamed from it: a slow reader holds disk, not memory."""
        with tempfile.TemporaryFile(prefix="raftkv-snapshot-") as f:
            try:
                await self._blocking(self._ctx.check_admin, context, AdminPermissionDenied)
                total = await self._blocking(lambda: snapshot.write(f, snapshot.capture(self._ctx)))
            except RaftKVError as e:
                await context.abort(grpc.StatusCode[e.grpc_code], str(e))
            log.info("sending snapshot to client total_bytes=%d", total)
            f.seek(0)
            pieces = snapshot.file_chunks(f, total)
            while True:
                piece = await self._blocking(next, pieces, None)
                if piece is None:
                    break
                yield rpc_pb2.SnapshotResponse(blob=piece[0], remaining_bytes=piece[1])
        log.info("sent snapshot to client total_bytes=%d", total)

    # ---- alarms and defragmentation ------------------------------------------

    @grpc_errors
    def Alarm(self, request, context):
        # etcd's AlarmResponse carries no header
        try:
            alarm_request = AlarmRequest(AlarmAction(request.action), request.memberID, AlarmType(request.alarm))
        except ValueError:
            return rpc_pb2.AlarmResponse()  # an action or alarm etcd does not know: etcd changes nothing
        response = self._ctx.kv.execute(alarm_request)
        return rpc_pb2.AlarmResponse(
            alarms=[rpc_pb2.AlarmMember(memberID=m.member_id, alarm=m.alarm) for m in response.alarms])

    @grpc_errors
    def Defragment(self, request, context):
        # the size a defragmentation brings down is a model (mvcc/quota.py);
        # etcd answers with an empty message too
        self._ctx.check_admin(context, AdminPermissionDenied)
        self._ctx.kv.defragment()
        log.info("defragmented")
        return rpc_pb2.DefragmentResponse()

    # ---- leadership --------------------------------------------------------------

    @grpc_errors
    def MoveLeader(self, request, context):
        self._ctx.check_admin(context, AdminPermissionDenied)
        remaining = context.time_remaining()
        timeout = MOVE_LEADER_TIMEOUT if remaining is None else min(remaining, 60.0)
        self._ctx.kv.move_leader(request.targetID, timeout)
        return self._moved()

    @staticmethod
    def _moved():
        return rpc_pb2.MoveLeaderResponse()  # etcd's carries no header either


__all__ = ["MaintenanceService"]
