"""etcdserverpb.Watch: one bidirectional stream carrying many watchers.

Watch ids are per stream: chosen by the client, or the lowest unused one
from 0 up, as etcd assigns them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv._proto.mvccpb import kv_pb2
from raftkv.client.embedded import EmbeddedWatch
from raftkv.errors import RaftKVError
from raftkv.mvcc.types import Event
from raftkv.mvcc.watch import WatchResponse
from raftkv.server.context import ServerContext
from raftkv.wire import _fill_header, event_to_pb, watch_response_to_pb

log = logging.getLogger(__name__)

# A watcher that fell behind can have thousands of revisions pending; they go
# out together, as etcd sends a catch-up, in messages of at most this many
# events (never splitting a revision).
MAX_EVENTS_PER_MESSAGE = 1000


class _Stream:
    """One client stream: its watches, and one loop that sends for all of them.

    Every watch signals the same event; the sending loop wakes, takes what
    each watch has pending and sends it, consecutive revisions of a watch in
    one message. A thread per watch (and one message per revision) made a few
    hundred watchers starve the writes they were watching."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.ready = threading.Event()
        self.watches: dict[int, EmbeddedWatch] = {}
        self.lock = threading.Lock()
        self.next_id = 0
        self.closed = False
        # control messages: those sent before the next events (created), and after them
        self.first: list[rpc_pb2.WatchResponse] = []
        self.then: list[rpc_pb2.WatchResponse] = []

    def _control(self, watch_id: int, *, first: bool = False, **fields) -> None:
        response = rpc_pb2.WatchResponse(watch_id=watch_id, **fields)
        _fill_header(response.header, self.ctx.kv.status().revision, self.ctx.header())
        (self.first if first else self.then).append(response)
        self.ready.set()

    def create(self, request) -> None:
        no_put = rpc_pb2.WatchCreateRequest.NOPUT in request.filters
        no_delete = rpc_pb2.WatchCreateRequest.NODELETE in request.filters
        with self.lock:
            if request.watch_id == 0:  # etcd: 0 asks for the lowest unused id
                while self.next_id in self.watches:
                    self.next_id += 1
                watch_id = self.next_id
                self.next_id += 1
            elif request.watch_id in self.watches:
                self._control(-1, first=True, created=True, canceled=True,
                              cancel_reason="mvcc: duplicate watch ID provided on the WatchStream")
                return
            else:
                watch_id = request.watch_id
            try:
                watch = self.ctx.kv._watch(
                    request.key, request.range_end, request.start_revision, request.prev_kv,
                    no_put, no_delete, request.progress_notify)
            except RaftKVError as e:
                self._control(watch_id, first=True, created=True, canceled=True, cancel_reason=str(e))
                return
            # "created" is queued before the watch can be polled: it goes out first
            self._control(watch_id, first=True, created=True)
            self.watches[watch_id] = watch
            watch.listen(self.ready)

    def cancel(self, watch_id: int) -> None:
        with self.lock:
            watch = self.watches.pop(watch_id, None)
            if watch is not None:
                watch.cancel()
                self._control(watch_id, canceled=True)

    def progress(self) -> None:
        # etcd 3.4 answers at once with the current revision, for the whole stream;
        # it goes out after every event already pending, all of them at or below it
        with self.lock:
            self._control(-1)

    def close(self) -> None:
        with self.lock:
            watches, self.watches = list(self.watches.values()), {}
            self.closed = True
        for watch in watches:
            watch.cancel()
        self.ready.set()

    def messages(self) -> Iterator[rpc_pb2.WatchResponse]:
        header = self.ctx.header()
        while True:
            self.ready.wait()
            self.ready.clear()
            with self.lock:
                first, self.first = self.first, []
                then, self.then = self.then, []
                watches = list(self.watches.items())
                closed = self.closed
            yield from first
            if closed:
                return
            now: list[int] = []

            def current() -> int:  # asked at most once a round: it takes the store's lock
                if not now:
                    now.append(self.ctx.kv.status().revision)
                return now[0]

            for (watch_id, watch), responses in zip(watches, EmbeddedWatch.take_all([w for _, w in watches])):
                if responses:
                    yield from _messages(watch_id, responses, header, current)
                if watch.canceled and self.watches.get(watch_id) is watch:
                    with self.lock:
                        if self.watches.get(watch_id) is watch:
                            del self.watches[watch_id]
            yield from then


def _messages(watch_id: int, responses: list[WatchResponse], header,
              current_revision: Callable[[], int]) -> Iterator[rpc_pb2.WatchResponse]:
    """One message per run of consecutive revisions (up to MAX_EVENTS_PER_MESSAGE
    events); progress notifications and the cancellation on their own. A message
    of several revisions carries the current revision in its header, as etcd's
    catch-up does."""
    run: list[WatchResponse] = []
    count = 0

    def flush() -> rpc_pb2.WatchResponse:
        revision = run[0].revision if len(run) == 1 else max(current_revision(), run[-1].revision)
        merged = WatchResponse(watch_id, revision, [e for r in run for e in r.events])
        run.clear()
        return _to_pb(watch_id, merged, header)

    for response in responses:
        if response.events and not response.canceled:
            if run and count + len(response.events) > MAX_EVENTS_PER_MESSAGE:
                yield flush()
                count = 0
            run.append(response)
            count += len(response.events)
            continue
        if run:
            yield flush()
            count = 0
        yield _to_pb(watch_id, response, header)
    if run:
        yield flush()


# Encoded events by the identity of the Event object, which the store shares
# among the watchers that see a change alike: a change that many watchers see
# is encoded once. An entry holds its event, so the id is not reused meanwhile.
_encoded: dict[int, tuple[Event, kv_pb2.Event]] = {}
_ENCODED_MAX = 16384


def _encode(event: Event) -> kv_pb2.Event:
    entry = _encoded.get(id(event))
    if entry is not None and entry[0] is event:
        return entry[1]
    encoded = event_to_pb(event)
    if len(_encoded) >= _ENCODED_MAX:
        _encoded.clear()
    _encoded[id(event)] = (event, encoded)
    return encoded


def _to_pb(watch_id: int, response: WatchResponse, header) -> rpc_pb2.WatchResponse:
    message = watch_response_to_pb(replace(response, events=[]), header)
    message.events.extend(_encode(event) for event in response.events)
    message.watch_id = watch_id
    if response.canceled and response.compact_revision:
        message.cancel_reason = ""  # etcd 3.4 reports compaction by compact_revision alone
    return message


class WatchService(rpc_pb2_grpc.WatchServicer):
    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx

    def Watch(self, request_iterator, context):
        stream = _Stream(self._ctx)

        def read_requests() -> None:
            try:
                for request in request_iterator:
                    kind = request.WhichOneof("request_union")
                    if kind == "create_request":
                        stream.create(request.create_request)
                    elif kind == "cancel_request":
                        stream.cancel(request.cancel_request.watch_id)
                    elif kind == "progress_request":
                        stream.progress()
            except Exception as e:  # the client went away, or sent garbage
                log.debug("watch stream reader ended error=%s", e)
            finally:
                stream.close()

        threading.Thread(target=read_requests, daemon=True, name="raftkv-watch-reader").start()
        context.add_callback(stream.close)
        yield from stream.messages()
