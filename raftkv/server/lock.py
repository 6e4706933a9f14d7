"""v3lockpb.Lock: distributed locks as etcd serves them.

A lock named N is held by the oldest key under ``N/``. Lock puts the
caller's key ``N/<lease id in hex>`` (bound to the caller's lease, or to a
new 60-second lease when it gives none) and waits until every key under
``N/`` created before it is deleted; Unlock deletes the key. A caller that
leaves while waiting takes its key back out of the queue.
"""

from __future__ import annotations

import logging

from raftkv._proto.v3lockpb import v3lock_pb2, v3lock_pb2_grpc
from raftkv.client import ops
from raftkv.errors import RaftKVError
from raftkv.server.aio import Blocking
from raftkv.server.concurrency import (
    Caller,
    Canceled,
    first_created,
    owner_key,
    recipe_call,
    session_lease,
    wait_deletes,
)
from raftkv.server.context import ServerContext
from raftkv.wire import _fill_header

log = logging.getLogger(__name__)


class LockService(v3lock_pb2_grpc.LockServicer):
    def __init__(self, ctx: ServerContext, recipes: Blocking) -> None:
        self._ctx = ctx
        self.recipes = recipes  # where the waiting happens (see recipe_call)

    def _header(self, out, revision: int) -> None:
        _fill_header(out, revision, self._ctx.header())

    @recipe_call
    def Lock(self, request, caller: Caller):
        kv = self._ctx.kv_for(caller.context)
        lease = session_lease(kv, request.lease)
        prefix = request.name + b"/"
        key = owner_key(prefix, lease)
        # queue up (or find the key this lease already queued), and read the
        # holder in the same step: the uncontended case takes one request
        response = kv.execute(ops.txn(
            [ops.create_revision(key) == 0],
            [ops.put(key, b"", lease=lease), first_created(prefix)],
            [ops.get(key), first_created(prefix)],
        ))
        revision = response.revision
        if not response.succeeded:
            revision = response.responses[0].kvs[0].create_revision
        holder = response.responses[1].kvs
        if not holder or holder[0].create_revision == revision:
            response_revision = response.revision
        else:
            try:
                response_revision = wait_deletes(kv, prefix, revision - 1, caller).revision
            except (RaftKVError, Canceled):
                self._give_up(kv, key)
                raise
        out = v3lock_pb2.LockResponse(key=key)
        self._header(out.header, response_revision)
        return out

    @staticmethod
    def _give_up(kv, key: bytes) -> None:
        try:
            kv.delete(key)
        except RaftKVError as e:
            log.info("could not take a waiting lock key back key=%r error=%s", key, e)

    @recipe_call
    def Unlock(self, request, caller: Caller):
        response = self._ctx.kv_for(caller.context).delete(request.key)
        out = v3lock_pb2.UnlockResponse()
        self._header(out.header, response.revision)
        return out
