"""etcdserverpb.Lease: grant, revoke, keep-alive stream, time-to-live, list."""

from __future__ import annotations

import logging

import grpc

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv.errors import LeaseNotFound, RaftKVError
from raftkv.mvcc.requests import LeaseGrantRequest, LeaseRevokeRequest
from raftkv.server.context import ServerContext, grpc_errors
from raftkv.wire import _fill_header

log = logging.getLogger(__name__)


class LeaseService(rpc_pb2_grpc.LeaseServicer):
    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx

    def _header(self, out) -> None:
        _fill_header(out, self._ctx.kv.status().revision, self._ctx.header())

    @grpc_errors
    def LeaseGrant(self, request, context):
        granted = self._ctx.kv._execute(LeaseGrantRequest(ttl=request.TTL, id=request.ID))
        response = rpc_pb2.LeaseGrantResponse(ID=granted.id, TTL=granted.ttl)
        _fill_header(response.header, granted.revision, self._ctx.header())
        return response

    @grpc_errors
    def LeaseRevoke(self, request, context):
        revoked = self._ctx.kv._execute(LeaseRevokeRequest(request.ID))
        response = rpc_pb2.LeaseRevokeResponse()
        _fill_header(response.header, revoked.revision, self._ctx.header())
        return response

    def LeaseKeepAlive(self, request_iterator, context):
        try:
            yield from self._keep_alive(request_iterator)
        except grpc.RpcError as e:  # the client went away mid-stream
            log.debug("keep-alive stream ended error=%s", e)

    def _keep_alive(self, request_iterator):
        for request in request_iterator:
            try:
                ttl = self._ctx.kv.lease_keep_alive(request.ID)
            except LeaseNotFound:
                ttl = 0  # etcd answers an unknown lease with TTL 0
            except RaftKVError as e:
                log.info("keep-alive failed lease_id=%x error=%s", request.ID, e)
                ttl = 0
            response = rpc_pb2.LeaseKeepAliveResponse(ID=request.ID, TTL=ttl)
            self._header(response.header)
            yield response

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
