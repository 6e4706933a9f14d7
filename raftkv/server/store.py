"""raftkv's own Store service (protos/raftkvpb): what etcd's Status leaves out."""

from __future__ import annotations

from raftkv._proto.raftkvpb import store_pb2, store_pb2_grpc
from raftkv.server.context import ServerContext, grpc_errors


class StoreService(store_pb2_grpc.StoreServicer):
    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx

    @grpc_errors
    def Counts(self, request, context):
        status = self._ctx.kv.status()
        return store_pb2.CountsResponse(
            member_id=self._ctx.member_id, revision=status.revision,
            compact_revision=status.compact_revision, key_count=status.key_count,
            lease_count=status.lease_count, watcher_count=status.watcher_count,
        )
