"""The hostile and careless clients of ``python -m bench abuse`` (bench/abuse.py).

Each abuser runs in a child process of its own (:class:`AbuserProcess`,
spawned: never forked from a process with gRPC threads), on grpc.aio and
etcd's own stubs, so that its work never takes the GIL from the probe whose
latency the benchmark measures. The parent tells it when to stop; it then
cancels every stream, closes every channel, and sends back what it did.

    slow-watchers     watch streams on the probe's (busy) prefix that read
                      their "created" answer and never read again
    stream-flood      Watch and LeaseKeepAlive streams opened, answered once, held idle
    snapshot-readers  Maintenance.Snapshot streams: half read a chunk every
                      ``snapshot_read_every`` seconds (a new snapshot when one
                      ends), half read one chunk and stall
    progress-flood    a watch on the busy prefix, then WatchProgressRequests as
                      fast as the client can write them; no answer ever read
    big-ranges        clients each ranging over the whole preloaded prefix in a loop
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import asdict, dataclass, field

import grpc

log = logging.getLogger(__name__)

KINDS = ("slow-watchers", "stream-flood", "snapshot-readers", "progress-flood", "big-ranges")
UNLIMITED = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


def _same(b: bytes) -> bytes:
    return b


def prefix_end(prefix: bytes) -> bytes:
    return prefix[:-1] + bytes([prefix[-1] + 1])


@dataclass
class AbuseParams:
    """How hard each abuser pushes; the same for both systems."""
    endpoint: str
    busy_prefix: bytes = b"/abuse/probe/"      # where the probe writes: the slow watchers' prefix
    range_prefix: bytes = b"/abuse/range/"     # the preloaded keys
    slow_watchers: int = 100
    watchers_per_channel: int = 10
    flood_streams: int = 512                   # half Watch, half LeaseKeepAlive
    flood_channels: int = 4
    snapshot_readers: int = 4
    snapshot_read_every: float = 1.0           # the slow half: one chunk this often
    progress_clients: int = 1
    range_clients: int = 4
    ready_timeout: float = 60.0


@dataclass
class AbuserStats:
    """What an abuser did, as it reports it."""
    kind: str
    ready: bool = False
    ready_s: float | None = None               # from its start until the abuse was in place
    streams: int = 0                           # streams (or clients) it held open
    answered: int = 0                          # streams that answered (created / first chunk / first renewal)
    requests: int = 0                          # progress requests written / ranges completed / chunks read
    bytes_read: int = 0
    errors: int = 0
    first_error: str | None = None
    extra: dict = field(default_factory=dict)
    cleaned_up: bool = False
    cpu_s: float | None = None                 # CPU the abuser's own process used, all of its threads

    def error(self, e: BaseException) -> None:
        self.errors += 1
        if self.first_error is None:
            if isinstance(e, grpc.aio.AioRpcError):
                self.first_error = f"{e.code().name}: {e.details()}"
            else:
                self.first_error = f"{type(e).__name__}: {e}"


# ---- the abusers (in the child) -------------------------------------------------------


class _Abuser:
    """Channels and calls to close, tasks to cancel, stats to fill."""

    def __init__(self, p: AbuseParams, kind: str) -> None:
        self.p = p
        self.stats = AbuserStats(kind)
        self.channels: list = []
        self.calls: list = []
        self.tasks: list[asyncio.Task] = []

    def channel(self, options=()):
        ch = grpc.aio.insecure_channel(self.p.endpoint, options=list(options))
        self.channels.append(ch)
        return ch

    async def start(self) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for call in self.calls:
            call.cancel()
        for ch in self.channels:
            await ch.close()
        self.stats.cleaned_up = True


class SlowWatchers(_Abuser):
    async def start(self) -> None:
        from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

        p = self.p
        create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=p.busy_prefix, range_end=prefix_end(p.busy_prefix)))
        stub = None
        for i in range(p.slow_watchers):
            if i % p.watchers_per_channel == 0:
                stub = rpc_pb2_grpc.WatchStub(self.channel())
            call = stub.Watch()
            self.calls.append(call)
            await call.write(create)
            self.stats.streams += 1

        async def created(call) -> None:
            try:
                r = await call.read()   # the "created" answer; nothing is read after it
                if r is not grpc.aio.EOF and r.created:
                    self.stats.answered += 1
            except Exception as e:  # noqa: BLE001 - counted
                self.stats.error(e)

        await asyncio.wait_for(asyncio.gather(*(created(c) for c in self.calls)), timeout=self.p.ready_timeout)


class StreamFlood(_Abuser):
    async def start(self) -> None:
        from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

        p = self.p
        channels = [self.channel() for _ in range(p.flood_channels)]
        lease = await rpc_pb2_grpc.LeaseStub(channels[0]).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=600), timeout=10)
        self.lease_id = lease.ID
        watches = p.flood_streams // 2
        for i in range(p.flood_streams):
            ch = channels[i % len(channels)]
            if i < watches:
                call = rpc_pb2_grpc.WatchStub(ch).Watch()
                request = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"/abuse/idle/%d" % i))
            else:
                call = rpc_pb2_grpc.LeaseStub(ch).LeaseKeepAlive()
                request = rpc_pb2.LeaseKeepAliveRequest(ID=lease.ID)
            self.calls.append(call)
            await asyncio.wait_for(call.write(request), timeout=10)
            self.stats.streams += 1
        self.stats.extra.update(watch_streams=watches, keep_alive_streams=p.flood_streams - watches)

        async def first(call) -> None:
            try:
                if await call.read() is not grpc.aio.EOF:
                    self.stats.answered += 1
            except Exception as e:  # noqa: BLE001 - counted
                self.stats.error(e)

        await asyncio.wait_for(asyncio.gather(*(first(c) for c in self.calls)), timeout=self.p.ready_timeout)

    async def close(self) -> None:
        from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

        lease_id = getattr(self, "lease_id", None)
        for call in self.calls:
            call.cancel()
        if lease_id is not None and self.channels:
            try:
                await rpc_pb2_grpc.LeaseStub(self.channels[0]).LeaseRevoke(
                    rpc_pb2.LeaseRevokeRequest(ID=lease_id), timeout=10)
            except Exception as e:  # noqa: BLE001 - counted
                self.stats.error(e)
        await super().close()


class SnapshotReaders(_Abuser):
    async def start(self) -> None:
        first_chunks = [asyncio.get_running_loop().create_future() for _ in range(self.p.snapshot_readers)]
        self.stats.extra.update(snapshots_completed=0, snapshot_bytes=None,
                                stalled_readers=self.p.snapshot_readers // 2)
        for i in range(self.p.snapshot_readers):
            self.tasks.append(asyncio.ensure_future(self._reader(i, first_chunks[i])))
            self.stats.streams += 1
        await asyncio.wait_for(asyncio.gather(*first_chunks), timeout=self.p.ready_timeout)

    async def _reader(self, i: int, first_chunk: asyncio.Future) -> None:
        from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

        stalls = i % 2 == 1
        stub = rpc_pb2_grpc.MaintenanceStub(self.channel())
        while True:
            call = stub.Snapshot(rpc_pb2.SnapshotRequest())
            self.calls.append(call)
            try:
                chunk = await call.read()
                if not first_chunk.done():
                    first_chunk.set_result(None)
                    self.stats.answered += 1
                while chunk is not grpc.aio.EOF:
                    self.stats.requests += 1
                    self.stats.bytes_read += len(chunk.blob)
                    if self.stats.extra["snapshot_bytes"] is None:
                        self.stats.extra["snapshot_bytes"] = len(chunk.blob) + chunk.remaining_bytes
                    if stalls:
                        await asyncio.Event().wait()   # never reads again
                    await asyncio.sleep(self.p.snapshot_read_every)
                    chunk = await call.read()
                self.stats.extra["snapshots_completed"] += 1
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - counted; try again a little later
                self.stats.error(e)
                if not first_chunk.done():
                    first_chunk.set_result(None)
                await asyncio.sleep(1.0)


class ProgressFlood(_Abuser):
    async def start(self) -> None:
        from raftkv._proto.etcdserverpb import rpc_pb2

        p = self.p
        create = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=p.busy_prefix, range_end=prefix_end(p.busy_prefix))).SerializeToString()
        progress = rpc_pb2.WatchRequest(progress_request=rpc_pb2.WatchProgressRequest()).SerializeToString()
        for _ in range(p.progress_clients):
            call = self.channel().stream_stream("/etcdserverpb.Watch/Watch", request_serializer=_same,
                                                response_deserializer=_same)()
            self.calls.append(call)
            await call.write(create)
            self.stats.streams += 1
            self.tasks.append(asyncio.ensure_future(self._flood(call, progress)))
        self.stats.extra["writes_blocked_s"] = 0.0

    async def _flood(self, call, progress: bytes) -> None:
        try:
            while True:
                began = time.monotonic()
                await call.write(progress)
                took = time.monotonic() - began
                if took > 0.1:   # the member stopped taking them for a while (flow control)
                    self.stats.extra["writes_blocked_s"] += took
                self.stats.requests += 1
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - counted: the stream is over
            self.stats.error(e)


class BigRanges(_Abuser):
    async def start(self) -> None:
        from raftkv._proto.etcdserverpb import rpc_pb2

        p = self.p
        request = rpc_pb2.RangeRequest(key=p.range_prefix, range_end=prefix_end(p.range_prefix)).SerializeToString()
        self.stats.extra.update(range_keys=None, range_bytes=None, range_s=[])
        for _ in range(p.range_clients):
            ch = self.channel(UNLIMITED)
            await asyncio.wait_for(ch.channel_ready(), timeout=p.ready_timeout)
            call = ch.unary_unary("/etcdserverpb.KV/Range", request_serializer=_same, response_deserializer=_same)
            self.stats.streams += 1
            self.tasks.append(asyncio.ensure_future(self._ranges(call, request)))

    async def _ranges(self, call, request: bytes) -> None:
        from raftkv._proto.etcdserverpb import rpc_pb2

        while True:
            began = time.monotonic()
            try:
                answer = await call(request, timeout=120)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - counted; try again a little later
                self.stats.error(e)
                await asyncio.sleep(0.5)
                continue
            self.stats.extra["range_s"].append(round(time.monotonic() - began, 3))
            self.stats.requests += 1
            self.stats.bytes_read += len(answer)
            if self.stats.extra["range_keys"] is None:   # decoded once, to see what a range holds
                self.stats.extra["range_keys"] = len(rpc_pb2.RangeResponse.FromString(answer).kvs)
                self.stats.extra["range_bytes"] = len(answer)
                self.stats.answered = 1


ABUSERS: dict[str, type[_Abuser]] = {
    "slow-watchers": SlowWatchers, "stream-flood": StreamFlood, "snapshot-readers": SnapshotReaders,
    "progress-flood": ProgressFlood, "big-ranges": BigRanges,
}


async def _abuse(kind: str, p: AbuseParams, ready, stop) -> AbuserStats:
    abuser = ABUSERS[kind](p, kind)
    began, cpu = time.monotonic(), time.process_time()
    try:
        try:
            await abuser.start()
            abuser.stats.ready = True
        except Exception as e:  # noqa: BLE001 - reported; the abuse goes on as far as it got
            abuser.stats.error(e)
        abuser.stats.ready_s = round(time.monotonic() - began, 3)
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.05)
    finally:
        await abuser.close()
    stats = abuser.stats
    stats.cpu_s = round(time.process_time() - cpu, 2)
    if "range_s" in stats.extra:   # the ranges' durations, summarised
        durations = sorted(stats.extra.pop("range_s"))
        stats.extra["range_s_median"] = durations[len(durations) // 2] if durations else None
        stats.extra["range_s_max"] = durations[-1] if durations else None
    return stats


def _child(kind: str, p: AbuseParams, ready, stop, conn) -> None:
    try:
        stats = asyncio.run(_abuse(kind, p, ready, stop))
        conn.send(asdict(stats))
    finally:
        ready.set()
        conn.close()


# ---- the parent's handle ------------------------------------------------------------------


class AbuserProcess:
    """One abuser in a child process: started, then stopped with its stats back."""

    def __init__(self, kind: str, params: AbuseParams) -> None:
        import multiprocessing

        if kind not in ABUSERS:
            raise ValueError(f"abuse must be one of {KINDS}")
        ctx = multiprocessing.get_context("spawn")   # never fork a process with gRPC threads
        self.kind = kind
        self.ready = ctx.Event()
        self.stop = ctx.Event()
        self._conn, child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_child, args=(kind, params, self.ready, self.stop, child),
                                daemon=True, name=f"bench-abuse-{kind}")
        self.proc.start()
        child.close()

    def wait_ready(self, timeout: float) -> bool:
        return self.ready.wait(timeout)

    def finish(self, timeout: float = 30.0) -> dict:
        """Stop the abuse; its stats (or what went wrong) once it cleaned up."""
        self.stop.set()
        stats: dict = {"kind": self.kind, "cleaned_up": False}
        try:
            if self._conn.poll(timeout):
                stats = self._conn.recv()
            else:
                stats["first_error"] = f"no report within {timeout:g} s"
        except (EOFError, OSError) as e:
            stats["first_error"] = f"the abuser process died: {e!r}"
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            log.warning("abuser %s still running; terminating it", self.kind)
            self.proc.terminate()
            self.proc.join(timeout=5)
        stats["exitcode"] = self.proc.exitcode
        self._conn.close()
        return stats
