"""etcdserverpb.Watch: one bidirectional stream carrying many watchers.

Watch ids are per stream: chosen by the client, or the lowest unused one
from 0 up, as etcd assigns them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv._proto.mvccpb import kv_pb2
from raftkv.client.embedded import EmbeddedWatch
from raftkv.errors import RaftKVError
from raftkv.mvcc.auth import PermissionDenied
from raftkv.mvcc.index import ALL_KEYS_FROM
from raftkv.mvcc.requests import RangeRequest
from raftkv.mvcc.types import Event
from raftkv.mvcc.watch import WatchResponse
from raftkv.server.aio import Blocking, LoopEvent
from raftkv.server.context import ServerContext
from raftkv.wire import _fill_header, event_to_pb, watch_response_to_pb

log = logging.getLogger(__name__)

# A watcher that fell behind can have thousands of revisions pending; they go
# out together, as etcd sends a catch-up, in messages of at most this many
# events and about this many bytes (never splitting a revision), so that a
# client with gRPC's default 4 MiB receive limit can take them.
MAX_EVENTS_PER_MESSAGE = 1000
MAX_MESSAGE_BYTES = 1024 * 1024
# Answers (created, canceled, progress) a stream holds for a client that
# does not read them; past this, it stops reading the client's requests.
MAX_QUEUED_ANSWERS = 1024
WATCH_PERMISSION_DENIED = f"rpc error: code = PermissionDenied desc = {PermissionDenied.message}"


class _Stream:
    """One client stream: its watches, and one coroutine that sends for all of them.

    Every watch wakes the same LoopEvent; the sending coroutine takes what
    each watch has pending and sends it, consecutive revisions of a watch in
    one message. Everything here runs on the server's event loop; the
    member's store is reached through ``blocking``."""

    def __init__(self, ctx: ServerContext, blocking: Blocking, max_request_bytes: int, context=None) -> None:
        self.ctx = ctx
        self.context = context  # the call's, for who makes it (auth)
        self.blocking = blocking
        self.max_request_bytes = max_request_bytes
        self.ready = LoopEvent()
        self.watches: dict[int, EmbeddedWatch] = {}
        self.fragmented: set[int] = set()  # watches that asked for large revisions in fragments
        self.next_id = 0
        self.ended = False
        # answers: those sent before the next events (created), and after them
        self.first: list[rpc_pb2.WatchResponse] = []
        self.then: list[rpc_pb2.WatchResponse] = []
        self.room = asyncio.Event()  # set while the answers queued are few
        self.room.set()

    def _answer(self, revision: int, watch_id: int, *, first: bool = False, **fields) -> None:
        response = rpc_pb2.WatchResponse(watch_id=watch_id, **fields)
        _fill_header(response.header, revision, self.ctx.header())
        (self.first if first else self.then).append(response)
        if len(self.first) + len(self.then) >= MAX_QUEUED_ANSWERS:
            self.room.clear()
        self.ready.set()

    def _revision(self) -> int:
        return self.ctx.kv.status().revision

    def _denied(self, key: bytes, range_end: bytes) -> bool:
        if self.context is None or not self.ctx.auth_enabled():
            return False
        try:
            self.ctx.kv.authorize(self.ctx.user(self.context), RangeRequest(key, range_end))
        except RaftKVError:
            return True
        return False

    async def create(self, request) -> None:
        no_put = rpc_pb2.WatchCreateRequest.NOPUT in request.filters
        no_delete = rpc_pb2.WatchCreateRequest.NODELETE in request.filters
        key = request.key or b"\x00"  # etcd: the empty key is the smallest key, "\x00"
        if request.range_end and request.range_end != ALL_KEYS_FROM and key >= request.range_end:
            # etcd refuses it without spending an id: created and canceled at once, id -1
            self._answer(await self.blocking(self._revision), -1, first=True, created=True, canceled=True,
                         cancel_reason="mvcc: watcher range is empty")
            return
        if await self.blocking(self._denied, key, request.range_end):
            # etcd: created and canceled at once, id -1, whatever the auth failure was;
            # its reason is the text of etcd's gRPC error, status prefix included
            self._answer(await self.blocking(self._revision), -1, first=True, created=True,
                         canceled=True, cancel_reason=WATCH_PERMISSION_DENIED)
            return
        if request.watch_id == 0:  # etcd: 0 asks for the lowest unused id
            while self.next_id in self.watches:
                self.next_id += 1
            watch_id = self.next_id
            self.next_id += 1
        elif request.watch_id in self.watches:
            self._answer(await self.blocking(self._revision), -1, first=True, created=True, canceled=True,
                         cancel_reason="mvcc: duplicate watch ID provided on the WatchStream")
            return
        else:
            watch_id = request.watch_id

        def watch() -> tuple[EmbeddedWatch | None, int, str]:
            try:
                created = self.ctx.kv.open_watch(
                    key, request.range_end, request.start_revision, request.prev_kv,
                    no_put, no_delete, request.progress_notify)
            except RaftKVError as e:
                return None, self._revision(), str(e)
            return created, self._revision(), ""

        created, revision, error = await self.blocking(watch)
        if created is None:
            self._answer(revision, watch_id, first=True, created=True, canceled=True, cancel_reason=error)
            return
        if self.ended:
            self.blocking.pool.submit(created.cancel)
            return
        # "created" is queued before the watch can be polled: it goes out first
        self._answer(revision, watch_id, first=True, created=True)
        self.watches[watch_id] = created
        if request.fragment:
            self.fragmented.add(watch_id)
        created.listen(self.ready)

    async def cancel(self, watch_id: int) -> None:
        watch = self.watches.pop(watch_id, None)
        if watch is not None:
            self.fragmented.discard(watch_id)

            def cancel() -> int:
                watch.cancel()
                return self._revision()

            self._answer(await self.blocking(cancel), watch_id, canceled=True)

    async def progress(self) -> None:
        # etcd 3.4 answers at once with the current revision, for the whole stream;
        # it goes out after every event already pending, all of them at or below it
        self._answer(await self.blocking(self._revision), -1)

    def end(self) -> None:
        """No more messages: the stream is over (the caller left, or sent garbage)."""
        self.ended = True
        watches, self.watches = list(self.watches.values()), {}
        for watch in watches:
            self.blocking.pool.submit(watch.cancel)
        self.ready.set()

    def _take(self, watches: list[EmbeddedWatch]) -> tuple[list[list[WatchResponse]], int]:
        return EmbeddedWatch.take_all(watches), self._revision()

    async def messages(self) -> AsyncIterator[rpc_pb2.WatchResponse]:
        header = self.ctx.header()
        while True:
            await self.ready.wait()
            first, self.first = self.first, []
            then, self.then = self.then, []
            # the watches whose "created" is in ``first`` or already sent, taken
            # before any yield: a watch created while this generator waits at
            # a yield has its "created" in the next round's ``first``, and its
            # events must not go out before it
            watches = list(self.watches.items())
            self.room.set()
            for message in first:
                yield message
            if self.ended:
                return
            if watches:
                taken, revision = await self.blocking(self._take, [w for _, w in watches])
                for (watch_id, watch), responses in zip(watches, taken):
                    if responses:
                        for message in _messages(watch_id, responses, header, revision,
                                                 self.max_request_bytes if watch_id in self.fragmented else 0):
                            yield message
                    if watch.canceled and self.watches.get(watch_id) is watch:
                        del self.watches[watch_id]
                        self.fragmented.discard(watch_id)
            for message in then:
                yield message


def _messages(watch_id: int, responses: list[WatchResponse], header, current_revision: int,
              fragment_bytes: int) -> Iterator[rpc_pb2.WatchResponse]:
    """One message per run of consecutive revisions (up to MAX_EVENTS_PER_MESSAGE
    events and about MAX_MESSAGE_BYTES); progress notifications and the
    cancellation on their own. A message of several revisions carries the
    current revision in its header, as etcd's catch-up does. With
    ``fragment_bytes``, a message larger than that goes out in fragments."""
    run: list[WatchResponse] = []
    count = size = 0

    def flush() -> Iterator[rpc_pb2.WatchResponse]:
        revision = run[0].revision if len(run) == 1 else max(current_revision, run[-1].revision)
        merged = WatchResponse(watch_id, revision, [e for r in run for e in r.events])
        run.clear()
        message = _to_pb(watch_id, merged, header)
        if fragment_bytes and message.ByteSize() > fragment_bytes:
            yield from _fragments(message, fragment_bytes)
        else:
            yield message

    for response in responses:
        if response.events and not response.canceled:
            weight = sum(_event_size(e) for e in response.events)
            if run and (count + len(response.events) > MAX_EVENTS_PER_MESSAGE
                        or size + weight > MAX_MESSAGE_BYTES):
                yield from flush()
                count = size = 0
            run.append(response)
            count += len(response.events)
            size += weight
            continue
        if run:
            yield from flush()
            count = size = 0
        yield _to_pb(watch_id, response, header)
    if run:
        yield from flush()


def _fragments(message: rpc_pb2.WatchResponse, limit: int) -> Iterator[rpc_pb2.WatchResponse]:
    """The message's events in several messages of at most about ``limit``
    bytes each (at least one event each), all but the last marked
    ``fragment``, as etcd splits a large revision for a watch that asked."""
    events = list(message.events)
    part: list = []
    size = 0
    for event in events:
        event_size = event.ByteSize()
        if part and size + event_size > limit:
            yield _fragment(message, part, True)
            part, size = [], 0
        part.append(event)
        size += event_size
    yield _fragment(message, part, False)


def _fragment(message: rpc_pb2.WatchResponse, events: list, more: bool) -> rpc_pb2.WatchResponse:
    out = rpc_pb2.WatchResponse()
    out.CopyFrom(message)
    del out.events[:]
    out.events.extend(events)
    out.fragment = more
    return out


def _event_size(event: Event) -> int:
    size = len(event.kv.key) + len(event.kv.value) + 32
    if event.prev_kv is not None:
        size += len(event.prev_kv.key) + len(event.prev_kv.value) + 32
    return size


class _EncodedEvents:
    """Encoded events by the identity of the Event object, which the store
    shares among the watchers that see a change alike: a change that many
    watchers see is encoded once. Bounded by bytes, oldest out first; an
    entry holds its event, so its id is not reused meanwhile."""

    def __init__(self, max_bytes: int = 8 * 1024 * 1024) -> None:
        self.max_bytes = max_bytes
        self._entries: dict[int, tuple[Event, kv_pb2.Event, int]] = {}
        self._bytes = 0

    def encode(self, event: Event) -> kv_pb2.Event:
        entry = self._entries.get(id(event))
        if entry is not None and entry[0] is event:
            return entry[1]
        encoded = event_to_pb(event)
        size = _event_size(event)
        if size * 32 > self.max_bytes:
            return encoded  # a large event is sent to few watchers in practice: not kept
        while self._bytes + size > self.max_bytes and self._entries:
            oldest = next(iter(self._entries))
            self._bytes -= self._entries.pop(oldest)[2]
        self._entries[id(event)] = (event, encoded, size)
        self._bytes += size
        return encoded


_encoded = _EncodedEvents()


def _to_pb(watch_id: int, response: WatchResponse, header) -> rpc_pb2.WatchResponse:
    message = watch_response_to_pb(replace(response, events=[]), header)
    message.events.extend(_encoded.encode(event) for event in response.events)
    message.watch_id = watch_id
    if response.canceled and response.compact_revision:
        # etcd 3.4 reports compaction by compact_revision alone, at revision 0
        message.cancel_reason = ""
        message.header.revision = 0
    return message


class WatchService(rpc_pb2_grpc.WatchServicer):
    def __init__(self, ctx: ServerContext, blocking: Blocking, max_request_bytes: int) -> None:
        self._ctx = ctx
        self._blocking = blocking
        self._max_request_bytes = max_request_bytes

    async def Watch(self, request_iterator, context):
        stream = _Stream(self._ctx, self._blocking, self._max_request_bytes, context)
        reader = asyncio.get_running_loop().create_task(_read_requests(stream, request_iterator, context))
        try:
            async for message in stream.messages():
                yield message
        finally:
            reader.cancel()
            stream.end()


async def _read_requests(stream: _Stream, request_iterator, context) -> None:
    try:
        async for request in request_iterator:
            kind = request.WhichOneof("request_union")
            if kind == "create_request":
                await stream.create(request.create_request)
            elif kind == "cancel_request":
                await stream.cancel(request.cancel_request.watch_id)
            elif kind == "progress_request":
                await stream.progress()
            # a client that does not read its answers is not read either
            await stream.room.wait()
    except asyncio.CancelledError:
        raise
    except Exception as e:  # the client went away
        log.debug("watch stream reader ended error=%s", e)
        stream.end()
        return
    if context.code() is not None:  # the client sent garbage: the stream ends with that status
        stream.end()
    # else the client closed its side: as etcd, the watches go on until the stream is torn down
