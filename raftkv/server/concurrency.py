"""What the Lock and Election services share: etcd's client-side recipes
(sessions, waiting for the keys created before one's own to go) run inside
the member against its KVClient.

etcd runs these recipes in its server through an in-process etcd client,
so every error reaches the caller as gRPC's Unknown with etcd's message;
``recipe_call`` does the same.
"""

from __future__ import annotations

import functools
import logging
import threading

import grpc

from raftkv.client import ops
from raftkv.client.api import KVClient, Watch
from raftkv.errors import Compacted, RaftKVError, StoreClosed
from raftkv.mvcc.requests import (
    LeaseGrantRequest,
    RangeRequest,
    RangeResponse,
    SortOrder,
    SortTarget,
)
from raftkv.mvcc.types import EventType
from raftkv.mvcc.watch import WatchResponse

log = logging.getLogger(__name__)

#: The TTL of the lease a Lock or Campaign without one is given (etcd's session default).
DEFAULT_SESSION_TTL = 60

_POLL = 0.25  # how often a waiting recipe looks whether its caller is still there


class RecipeError(RaftKVError):
    grpc_code = "UNKNOWN"


class LostWatcher(RecipeError):
    message = "lost watcher waiting for delete"


class Canceled(Exception):
    """The caller went away (canceled, or its deadline passed)."""


class Caller:
    """The liveness of one RPC's caller (set from the server's loop when the call ends)."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self.context = context
        self.gone = threading.Event()
        context.add_done_callback(lambda _call: self.gone.set())

    @property
    def active(self) -> bool:
        return not self.gone.is_set()

    def check(self) -> None:
        if not self.active:
            raise Canceled()


async def _abort_for(error: BaseException, context: grpc.aio.ServicerContext, name: str) -> None:
    if isinstance(error, RaftKVError):
        await context.abort(grpc.StatusCode.UNKNOWN, str(error))
    if isinstance(error, Canceled):
        await context.abort(grpc.StatusCode.CANCELLED, "context canceled")
    log.error("request failed method=%s", name, exc_info=error)
    await context.abort(grpc.StatusCode.INTERNAL, f"raftkv: internal error: {error}")


def recipe_call(method):
    """A recipe (which may wait a long time) as a coroutine: its blocking
    body runs in the service's ``recipes`` pool, not in gRPC's, so waiting
    locks and campaigns never starve other requests. Errors get etcd's
    status: Unknown with the message."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        caller = Caller(context)
        try:
            return await self.recipes(method, self, request, caller)
        except grpc.RpcError:
            raise
        except Exception as e:  # never crash the member on a request
            await _abort_for(e, context, method.__name__)

    return wrapper


def recipe_stream(method):
    """``recipe_call`` for a recipe that yields responses (a sync generator)."""

    @functools.wraps(method)
    async def wrapper(self, request, context):
        caller = Caller(context)
        responses = method(self, request, caller)
        try:
            while True:
                response = await self.recipes(next, responses, None)
                if response is None:
                    return
                yield response
        except grpc.RpcError:
            raise
        except Exception as e:
            await _abort_for(e, context, method.__name__)
        finally:
            caller.gone.set()
            self.recipes.pool.submit(responses.close)

    return wrapper


def session_lease(kv: KVClient, lease: int) -> int:
    """The lease a recipe's keys are bound to: the caller's, or a new one
    left to expire (etcd grants it and never keeps it alive)."""
    if lease:
        return lease
    return kv.execute(LeaseGrantRequest(ttl=DEFAULT_SESSION_TTL, id=0)).id


def owner_key(prefix: bytes, lease: int) -> bytes:
    """``prefix`` followed by the lease id in lowercase hex, as etcd names them."""
    return prefix + format(lease, "x").encode()


def first_created(prefix: bytes) -> RangeRequest:
    """The oldest key under ``prefix``: the lock's holder, the election's leader."""
    return ops.get(prefix, prefix=True, sort_target=SortTarget.CREATE,
                   sort_order=SortOrder.ASCEND, limit=1)


def next_response(watch: Watch, caller: Caller) -> WatchResponse | None:
    """The watch's next batch; None when the watch ended. Canceled when the
    caller left first."""
    while True:
        caller.check()
        response = watch.next_response(timeout=_POLL)
        if response is not None:
            return response
        if watch.canceled:
            return None


def _watch_error(response: WatchResponse | None) -> RaftKVError:
    if response is not None and response.compact_revision:
        return Compacted()
    if response is not None and response.cancel_reason:
        return RecipeError(response.cancel_reason)
    return LostWatcher()


def wait_delete(kv: KVClient, key: bytes, revision: int, caller: Caller) -> None:
    """Return once ``key`` is deleted at ``revision`` or later."""
    with kv.watch(key, start_revision=revision) as watch:
        while True:
            response = next_response(watch, caller)
            if response is None or response.canceled:
                if kv.closed:
                    raise StoreClosed()
                raise _watch_error(response)
            if any(event.type == EventType.DELETE for event in response.events):
                return


def wait_deletes(kv: KVClient, prefix: bytes, max_create_revision: int,
                 caller: Caller) -> RangeResponse:
    """Return once no key under ``prefix`` was created at or before
    ``max_create_revision``, waiting for the newest such key at a time; the
    last read's response."""
    while True:
        caller.check()
        response = kv.execute(ops.get(
            prefix, prefix=True, sort_target=SortTarget.CREATE, sort_order=SortOrder.DESCEND,
            limit=1, max_create_revision=max_create_revision))
        if not response.kvs:
            return response
        wait_delete(kv, response.kvs[0].key, response.revision, caller)
