"""etcdserverpb.Maintenance: status and housekeeping of one member."""

from __future__ import annotations

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv.server.context import ServerContext, grpc_errors
from raftkv.wire import _fill_header

# The etcd API version raftkv speaks; etcd clients read it from Status.
ETCD_API_VERSION = "3.4.23"


class MaintenanceService(rpc_pb2_grpc.MaintenanceServicer):
    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx

    @grpc_errors
    def Status(self, request, context):
        status = self._ctx.kv.status()
        response = rpc_pb2.StatusResponse(
            version=ETCD_API_VERSION,
            dbSize=0,
            leader=status.leader,
            raftIndex=status.raft_index,
            raftTerm=status.raft_term,
            raftAppliedIndex=status.raft_index,
            dbSizeInUse=0,
        )
        _fill_header(response.header, status.revision, self._ctx.header())
        return response


__all__ = ["MaintenanceService"]
