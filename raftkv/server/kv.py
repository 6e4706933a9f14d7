"""etcdserverpb.KV: Range, Put, DeleteRange, Txn, Compact.

Requests are coroutines: what the member can start without blocking (a
write, a one-key read) is handed to it, and the coroutine waits on the event
loop, with no thread held, until the Raft thread has applied the write or
the read's index (``aio.Completions``). Ranges, and writes the member cannot
start that way, run in a pool thread."""

from __future__ import annotations

import asyncio
import logging

import grpc

from raftkv._proto.etcdserverpb import rpc_pb2_grpc
from raftkv.errors import RaftKVError, RequestTimedOut
from raftkv.server.aio import Blocking, Completions
from raftkv.server.context import ServerContext, grpc_errors
from raftkv.wire import request_from_pb, response_to_pb

log = logging.getLogger(__name__)


class KVService(rpc_pb2_grpc.KVServicer):
    def __init__(self, ctx: ServerContext, blocking: Blocking, completions: Completions) -> None:
        self._ctx = ctx
        self._blocking = blocking
        self._completions = completions

    def _run(self, request, context):
        return self._executed(self._ctx.kv_for(context), request_from_pb(request))

    def _executed(self, kv, request):
        return response_to_pb(kv.execute(request), self._ctx.header())

    async def _submitted(self, request, context, method: str):
        try:
            decoded = request_from_pb(request)
            kv = self._ctx.kv_for(context)
            future, done = self._completions.future()
            if not kv.submit(decoded, done):
                # a range may be large: it is converted in the pool thread too, not on the loop
                return await self._blocking(self._executed, kv, decoded)
            try:
                response = await asyncio.wait_for(future, self._ctx.request_timeout)
            except asyncio.TimeoutError:
                raise RequestTimedOut() from None
            return response_to_pb(response, self._ctx.header())
        except RaftKVError as e:
            await context.abort(grpc.StatusCode[e.grpc_code], str(e))
        except (grpc.RpcError, asyncio.CancelledError):
            raise
        except Exception as e:  # never crash the member on a request
            log.exception("request failed method=%s", method)
            await context.abort(grpc.StatusCode.INTERNAL, f"raftkv: internal error: {e}")

    async def Range(self, request, context):
        return await self._submitted(request, context, "Range")

    async def Put(self, request, context):
        return await self._submitted(request, context, "Put")

    async def DeleteRange(self, request, context):
        return await self._submitted(request, context, "DeleteRange")

    async def Txn(self, request, context):
        return await self._submitted(request, context, "Txn")

    @grpc_errors
    def Compact(self, request, context):
        return self._run(request, context)
