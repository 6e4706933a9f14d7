"""etcdserverpb.KV: Range, Put, DeleteRange, Txn, Compact."""

from __future__ import annotations

from raftkv._proto.etcdserverpb import rpc_pb2_grpc
from raftkv.server.context import ServerContext, grpc_errors
from raftkv.wire import request_from_pb, response_to_pb


class KVService(rpc_pb2_grpc.KVServicer):
    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx

    def _run(self, request, context):
        response = self._ctx.kv_for(context).execute(request_from_pb(request))
        return response_to_pb(response, self._ctx.header())

    @grpc_errors
    def Range(self, request, context):
        return self._run(request, context)

    @grpc_errors
    def Put(self, request, context):
        return self._run(request, context)

    @grpc_errors
    def DeleteRange(self, request, context):
        return self._run(request, context)

    @grpc_errors
    def Txn(self, request, context):
        return self._run(request, context)

    @grpc_errors
    def Compact(self, request, context):
        return self._run(request, context)
