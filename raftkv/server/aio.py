"""The gRPC server on one asyncio event loop, and the bridges between it and the member.

Streams (Watch, LeaseKeepAlive, Snapshot, Observe) are coroutines on the
loop: an open stream costs no thread, so no number of them can starve unary
requests. The KV service's requests are coroutines too: a write or a
one-key read the member can start without blocking waits on the loop, and
the Raft thread hands results back through ``Completions``. The other unary
requests run as plain functions in gRPC's thread pool (the member's API
blocks while Raft commits). A coroutine that must call the member (which
takes its lock, or waits on Raft) does so through ``Blocking``, never on
the loop itself.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from concurrent import futures
from typing import Any, TypeVar

import grpc

log = logging.getLogger(__name__)

T = TypeVar("T")


class Blocking:
    """Runs blocking calls of the member off the event loop, in a pool of their own."""

    def __init__(self, max_workers: int, name: str) -> None:
        self.pool = futures.ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix=name)

    async def __call__(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.pool, functools.partial(fn, *args))

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class Completions:
    """Results that other threads hand to coroutines on one event loop. The
    Raft thread finishes many requests in one tick: the loop is woken once
    for all of them, not once each."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lock = threading.Lock()
        self._ready: list[tuple[asyncio.Future, Any, BaseException | None]] = []

    def future(self) -> tuple[asyncio.Future, Callable[[Any, BaseException | None], None]]:
        """A future on the loop, and the ``done(result, error)`` any thread finishes it with."""
        future = self._loop.create_future()

        def done(result: Any, error: BaseException | None) -> None:
            with self._lock:
                first = not self._ready
                self._ready.append((future, result, error))
            if first:
                try:
                    self._loop.call_soon_threadsafe(self._deliver)
                except RuntimeError:  # the loop is closed: nobody waits any more
                    pass

        return future, done

    def _deliver(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
        for future, result, error in ready:
            if future.done():
                continue  # its caller stopped waiting
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)


class LoopEvent:
    """A wake-up that any thread can give (``set``) and a coroutine on the
    loop waits for; waiting consumes it."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

    def set(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._event.set)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    async def wait(self, timeout: float | None = None) -> bool:
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except asyncio.TimeoutError:
            return False
        self._event.clear()
        return True


class CallerGone:
    """Whether a call's caller has left (canceled, deadline passed, connection lost)."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self.event = threading.Event()
        context.add_done_callback(lambda _: self.event.set())

    @property
    def gone(self) -> bool:
        return self.event.is_set()


class _Stopping:
    """What ``GrpcServer.stop`` returns: ``wait()`` blocks until it has stopped."""

    def __init__(self, done: threading.Event) -> None:
        self._done = done

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)


class GrpcServer:
    """A grpc.aio server with its own event loop thread, started and stopped
    from ordinary code (``raftkv serve`` and tests)."""

    def __init__(self, configure: Callable[[grpc.aio.Server], None], *, max_workers: int,
                 interceptors: list, options: list) -> None:
        self._configure = configure
        self._max_workers = max_workers
        self._interceptors = interceptors
        self._options = options
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="raftkv-grpc-loop", daemon=True)
        self._server: grpc.aio.Server | None = None
        self._stopped = threading.Event()
        self.bound_ports: list[int] = []
        self._thread.start()
        self._call(self._create())

    def _call(self, coroutine) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def _create(self) -> None:
        self._server = grpc.aio.server(
            migration_thread_pool=futures.ThreadPoolExecutor(
                max_workers=self._max_workers, thread_name_prefix="raftkv-grpc"),
            interceptors=self._interceptors, options=self._options)
        self._configure(self._server)

    def add_port(self, address: str, credentials: grpc.ServerCredentials | None) -> int:
        async def add() -> int:
            if credentials is None:
                return self._server.add_insecure_port(address)
            return self._server.add_secure_port(address, credentials)
        try:
            port = self._call(add())
        except RuntimeError as e:  # gRPC's "Failed to bind to address ..."
            raise OSError(f"cannot listen for clients on {address}: {e}") from None
        self.bound_ports.append(port)
        return port

    def run_on_loop(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` on the server's loop (things that must be created there)."""
        async def call() -> T:
            return fn()
        return self._call(call())

    def start(self) -> None:
        self._call(self._server.start())

    def stop(self, grace: float | None = None) -> _Stopping:
        def finish(_future) -> None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._stopped.set()

        if self._stopped.is_set() or not self._thread.is_alive():
            self._stopped.set()
        else:
            asyncio.run_coroutine_threadsafe(self._server.stop(grace), self._loop).add_done_callback(finish)
        return _Stopping(self._stopped)
