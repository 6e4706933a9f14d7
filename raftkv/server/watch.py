"""etcdserverpb.Watch: one bidirectional stream carrying many watchers.

Watch ids are per stream: chosen by the client, or the lowest unused one
from 0 up, as etcd assigns them.
"""

from __future__ import annotations

import logging
import queue
import threading

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv.client.api import Watch
from raftkv.errors import RaftKVError
from raftkv.server.context import ServerContext
from raftkv.wire import _fill_header, watch_response_to_pb

log = logging.getLogger(__name__)

_END = object()


class _Stream:
    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self.out: queue.Queue = queue.Queue()
        self.watches: dict[int, Watch] = {}
        self.lock = threading.Lock()
        self.next_id = 0

    def send_control(self, watch_id: int, **fields) -> None:
        response = rpc_pb2.WatchResponse(watch_id=watch_id, **fields)
        _fill_header(response.header, self.ctx.kv.status().revision, self.ctx.header())
        self.out.put(response)

    def create(self, request) -> None:
        with self.lock:
            if request.watch_id == 0:  # etcd: 0 asks for the lowest unused id
                while self.next_id in self.watches:
                    self.next_id += 1
                watch_id = self.next_id
                self.next_id += 1
            elif request.watch_id in self.watches:
                self.send_control(-1, created=True, canceled=True,
                                  cancel_reason="mvcc: duplicate watch ID provided on the WatchStream")
                return
            else:
                watch_id = request.watch_id
            no_put = rpc_pb2.WatchCreateRequest.NOPUT in request.filters
            no_delete = rpc_pb2.WatchCreateRequest.NODELETE in request.filters
            try:
                watch = self.ctx.kv._watch(
                    request.key, request.range_end, request.start_revision, request.prev_kv,
                    no_put, no_delete, request.progress_notify)
            except RaftKVError as e:
                self.send_control(watch_id, created=True, canceled=True, cancel_reason=str(e))
                return
            self.watches[watch_id] = watch
        self.send_control(watch_id, created=True)
        threading.Thread(target=self._pump, args=(watch_id, watch), daemon=True,
                         name=f"raftkv-watch-stream-{watch_id}").start()

    def _pump(self, watch_id: int, watch: Watch) -> None:
        header = self.ctx.header()
        for response in watch:
            message = watch_response_to_pb(response, header)
            message.watch_id = watch_id
            if response.canceled and response.compact_revision:
                message.cancel_reason = ""  # etcd 3.4 reports compaction by compact_revision alone
            self.out.put(message)
            if response.canceled:
                break
        with self.lock:
            if self.watches.get(watch_id) is watch:
                del self.watches[watch_id]

    def cancel(self, watch_id: int) -> None:
        with self.lock:
            watch = self.watches.pop(watch_id, None)
        if watch is not None:
            watch.cancel()
            self.send_control(watch_id, canceled=True)

    def progress(self) -> None:
        # etcd 3.4 answers at once with the current revision, for the whole stream
        self.send_control(-1)

    def close(self) -> None:
        with self.lock:
            watches, self.watches = list(self.watches.values()), {}
        for watch in watches:
            watch.cancel()
        self.out.put(_END)


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
        while True:
            item = stream.out.get()
            if item is _END:
                return
            yield item
