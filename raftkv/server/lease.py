"""etcdserverpb.Lease: grant, revoke, keep-alive stream, time-to-live, list."""

from __future__ import annotations

import logging

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv.errors import LeaseNotFound, RaftKVError
from raftkv.mvcc.requests import LeaseGrantRequest, LeaseRevokeRequest
from raftkv.server.aio import Blocking
from raftkv.server.context import ServerContext, grpc_errors
from raftkv.wire import _fill_header

log = logging.getLogger(__name__)


class LeaseService(rpc_pb2_grpc.LeaseServicer):
    def __init__(self, ctx: ServerContext, blocking: Blocking) -> None:
        self._ctx = ctx
        self._blocking = blocking

    def _header(self, out) -> None:
        _fill_header(out, self._ctx.kv.status().revision, self._ctx.header())

    @grpc_errors
    def LeaseGrant(self, request, context):
        granted = self._ctx.kv_for(context).execute(LeaseGrantRequest(ttl=request.TTL, id=request.ID))
        response = rpc_pb2.LeaseGrantResponse(ID=granted.id, TTL=granted.ttl)
        _fill_header(response.header, granted.revision, self._ctx.header())
        return response

    @grpc_errors
    def LeaseRevoke(self, request, context):
        revoked = self._ctx.kv_for(context).execute(LeaseRevokeRequest(request.ID))
        response = rpc_pb2.LeaseRevokeResponse()
        _fill_header(response.header, revoked.revision, self._ctx.header())
        return response

    async def LeaseKeepAlive(self, request_iterator, context):
        """One answer per request, in order; an open stream holds no thread."""
        async for request in request_iterator:
            ttl, revision = await self._blocking(self._renew, request.ID)
            response = rpc_pb2.LeaseKeepAliveResponse(ID=request.ID, TTL=ttl)
            _fill_header(response.header, revision, self._ctx.header())
            yield response

    def _renew(self, lease_id: int) -> tuple[int, int]:
        try:
            ttl = self._ctx.kv.lease_keep_alive(lease_id)
        except LeaseNotFound:
            ttl = 0  # etcd answers an unknown lease with TTL 0
        except RaftKVError as e:
            log.info("keep-alive failed lease_id=%x error=%s", lease_id, e)
            ttl = 0
        return ttl, self._ctx.kv.status().revision

    @grpc_errors
    def LeaseTimeToLive(self, request, context):
        ttl = self._ctx.kv.lease_time_to_live(request.ID, keys=request.keys)
        response = rpc_pb2.LeaseTimeToLiveResponse(
            ID=request.ID, TTL=ttl.ttl, grantedTTL=ttl.granted_ttl, keys=ttl.keys)
        self._header(response.header)
        return response

    @grpc_errors
    def LeaseLeases(self, request, context):
        response = rpc_pb2.LeaseLeasesResponse(
            leases=[rpc_pb2.LeaseStatus(ID=lease_id) for lease_id in self._ctx.kv.leases()])
        self._header(response.header)
        return response
