"""Watchers of the benchmark prefix that resume where they left off."""

from __future__ import annotations

import threading
import time

from bench.checks import Ev
from bench.load import decode
from bench.scenario import PREFIX


def to_event(event) -> Ev:
    kv = event.kv
    if int(event.type) == 1:
        return Ev(kv.mod_revision, kv.key.decode(), "DELETE", None)
    return Ev(kv.mod_revision, kv.key.decode(), "PUT", decode(kv.value))


class Watcher:
    """Watches the prefix from ``start_revision``, resuming on another member
    from the revision after the last one received whenever a stream ends."""

    def __init__(self, clients, first_member: int, start_revision: int, t0: float) -> None:
        self.clients = clients
        self.member = first_member
        self.start_revision = start_revision
        self.next_revision = start_revision
        self.t0 = t0
        self.responses: list[tuple[float, list[Ev]]] = []
        self.resumes = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"bench-watch-{first_member}")
        self.thread.start()

    @property
    def last_revision(self) -> int:
        return self.next_revision - 1

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                w = self.clients[self.member].watch(PREFIX, prefix=True, start_revision=self.next_revision)
            except Exception:
                self.member = (self.member + 1) % len(self.clients)
                self.stop.wait(0.1)
                continue
            try:
                while not self.stop.is_set():
                    r = w.next_response(timeout=0.2)
                    if r is None:
                        if w.canceled:
                            break
                        continue
                    if r.events:
                        evs = [to_event(e) for e in r.events]
                        self.responses.append((time.monotonic() - self.t0, evs))
                        self.next_revision = evs[-1].revision + 1
                    if r.canceled:
                        break
            finally:
                try:
                    w.cancel()
                except Exception:
                    pass
            if not self.stop.is_set():
                self.resumes += 1
                self.member = (self.member + 1) % len(self.clients)
                self.stop.wait(0.05)


class _Multiplexed:
    """One watcher of a :class:`WatchStream`; reads like a :class:`Watcher`.

    Responses are kept as received (protobuf messages) while the run goes on
    and turned into :class:`Ev` lists only when first asked for, so many
    watchers cost the load as little as possible."""

    def __init__(self, stream: WatchStream, start_revision: int) -> None:
        self.stream = stream
        self.start_revision = start_revision
        self.next_revision = start_revision
        self.raw: list[tuple[float, object]] = []
        self.resumes = 0
        self._converted: list[tuple[float, list[Ev]]] | None = None

    @property
    def stop(self) -> threading.Event:
        return self.stream.stop

    @property
    def thread(self) -> threading.Thread:
        return self.stream.thread

    @property
    def last_revision(self) -> int:
        return self.next_revision - 1

    @property
    def responses(self) -> list[tuple[float, list[Ev]]]:
        if self._converted is None or len(self._converted) != len(self.raw):
            interned = self.stream.interned
            out = []
            for t, msg in self.raw:
                evs = []
                for e in msg.events:
                    ev = to_event(e)
                    evs.append(interned.setdefault(ev, ev))
                out.append((t, evs))
            self._converted = out
        return self._converted


class WatchStream:
    """Several watchers of the prefix multiplexed on one gRPC Watch stream.

    When the stream ends (the member died) every watcher on it resumes, on
    the next member, from the revision after the last one it received — the
    same rule as :class:`Watcher`, with one reader thread for the lot."""

    def __init__(self, endpoints: list[str], first_member: int, count: int, start_revision: int,
                 t0: float, interned: dict | None = None) -> None:
        self.endpoints = endpoints
        self.member = first_member
        self.t0 = t0
        self.interned: dict = interned if interned is not None else {}
        self.watchers = [_Multiplexed(self, start_revision) for _ in range(count)]
        self.stop = threading.Event()
        self.created = 0                   # watches the member confirmed, over every connection
        self._call = None
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"bench-watch-mux-{first_member}")
        self.thread.start()

    def _run(self) -> None:
        import grpc

        from raftkv._proto.etcdserverpb import rpc_pb2_grpc

        while not self.stop.is_set():
            channel = grpc.insecure_channel(self.endpoints[self.member],
                                            options=[("grpc.max_receive_message_length", 2**31 - 1)])
            reader = threading.Thread(target=self._read, args=(rpc_pb2_grpc.WatchStub(channel),),
                                      daemon=True, name=f"bench-watch-mux-read-{self.member}")
            reader.start()
            while reader.is_alive() and not self.stop.wait(0.2):
                pass
            call = self._call
            if call is not None:
                call.cancel()
            reader.join(timeout=5)
            channel.close()
            if not self.stop.is_set():
                for w in self.watchers:
                    w.resumes += 1
                self.member = (self.member + 1) % len(self.endpoints)
                self.stop.wait(0.05)

    def _read(self, stub) -> None:
        from collections import deque

        from raftkv._proto.etcdserverpb import rpc_pb2
        from raftkv.mvcc.index import prefix_end

        key = PREFIX.encode()
        requests = [rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=key, range_end=prefix_end(key), start_revision=w.next_revision)) for w in self.watchers]
        pending = deque(self.watchers)     # created responses come in the order of the creates
        by_id: dict[int, _Multiplexed] = {}
        done = threading.Event()
        try:
            self._call = call = stub.Watch(_hold(requests, done))
            for msg in call:
                if msg.created:
                    w = pending.popleft()
                    if msg.canceled:
                        return
                    by_id[msg.watch_id] = w
                    self.created += 1
                    continue
                w = by_id.get(msg.watch_id)
                if w is None:
                    continue
                if msg.events:
                    w.raw.append((time.monotonic() - self.t0, msg))
                    w.next_revision = msg.events[-1].kv.mod_revision + 1
                if msg.canceled:
                    return
        except Exception:  # noqa: BLE001 - the stream broke: resume elsewhere
            return
        finally:
            self._call = None
            done.set()


def _hold(requests: list, done: threading.Event):
    """The request side of a watch stream: the creates, then open until the stream is done."""
    yield from requests
    done.wait()


def _streams(endpoints: list[str], count: int, start_revision: int, t0: float,
             per_stream: int) -> list[WatchStream]:
    n = len(endpoints)
    streams = n * -(-count // (n * per_stream))
    interned: dict = {}
    return [WatchStream(endpoints, g % n, count // streams + (1 if g < count % streams else 0),
                        start_revision, t0, interned) for g in range(streams)]


class _Remote:
    """One watcher of a :class:`WatcherProcess`; reads like a :class:`Watcher`."""

    def __init__(self, process: WatcherProcess, index: int) -> None:
        self.process = process
        self.index = index

    @property
    def stop(self) -> threading.Event:
        return self.process.stop

    @property
    def thread(self) -> threading.Thread:
        return self.process.thread

    @property
    def last_revision(self) -> int:
        return self.process.next_revisions[self.index] - 1

    @property
    def resumes(self) -> int:
        return self.process.resumes[self.index]

    @property
    def responses(self) -> list[tuple[float, list[Ev]]]:
        self.process.thread.join()
        return self.process.responses[self.index]


class WatcherProcess:
    """Many watchers, multiplexed over a few streams per member
    (:class:`WatchStream`), in a child process of their own: reading
    thousands of watch responses a second would otherwise take the GIL from
    the load's threads and measure this process instead of the cluster.
    Both processes time events on the same clock (CLOCK_MONOTONIC)."""

    def __init__(self, endpoints: list[str], count: int, start_revision: int, t0: float,
                 per_stream: int = 25) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")   # never fork a process with gRPC threads
        self.next_revisions = ctx.RawArray("q", [start_revision] * count)
        self.resumes = ctx.RawArray("q", count)
        self.created = ctx.RawValue("q", 0)
        self._done = ctx.Event()
        self._conn, child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_child, daemon=True, name="bench-watchers", args=(
            endpoints, count, start_revision, t0, per_stream, self.next_revisions, self.resumes,
            self.created, self._done, child))
        self.proc.start()
        child.close()
        self.responses: list[list[tuple[float, list[Ev]]]] = [[] for _ in range(count)]
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._collect, daemon=True, name="bench-watchers-collect")
        self.thread.start()
        self.watchers = [_Remote(self, i) for i in range(count)]

    def wait_created(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.created.value < len(self.watchers) and time.monotonic() < deadline:
            if not self.proc.is_alive():
                return False
            time.sleep(0.05)
        return self.created.value >= len(self.watchers)

    def _collect(self) -> None:
        self.stop.wait()
        self._done.set()
        interned: dict[tuple, Ev] = {}
        try:
            for i in range(len(self.watchers)):
                got = self._conn.recv()
                self.responses[i] = [(t, [interned.get(e) or interned.setdefault(e, Ev(*e)) for e in evs])
                                     for t, evs in got]
        except (EOFError, OSError):
            pass   # the child died: what it had is lost, which the checks will report
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.terminate()


def _child(endpoints, count, start_revision, t0, per_stream, next_revisions, resumes, created, done, conn) -> None:
    streams = _streams(endpoints, count, start_revision, t0, per_stream)
    watchers = [w for s in streams for w in s.watchers]
    while not done.wait(0.05):
        for i, w in enumerate(watchers):
            next_revisions[i] = w.next_revision
            resumes[i] = w.resumes
        created.value = sum(s.created for s in streams)
    for s in streams:
        s.stop.set()
    for s in streams:
        s.thread.join(timeout=5)
    for w in watchers:
        conn.send([(t, [(e.revision, e.key, e.type, e.value) for e in evs]) for t, evs in w.responses])
    conn.close()


def start_watchers(clients, count: int, start_revision: int, t0: float, per_stream: int = 25) -> list:
    """``count`` watchers of the prefix spread over the members: one thread
    each (:class:`Watcher`, through raftkv.Client) when there are few, else
    in a child process, multiplexed up to ``per_stream`` on one stream
    (:class:`WatcherProcess`)."""
    n = len(clients)
    if count <= 2 * n:
        return [Watcher(clients, i % n, start_revision, t0) for i in range(count)]
    group = WatcherProcess([c.endpoints[0] for c in clients], count, start_revision, t0, per_stream)
    if not group.wait_created(timeout=60):
        group.stop.set()
        raise RuntimeError(f"the {count} watchers could not all be created")
    return group.watchers
