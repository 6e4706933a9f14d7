"""``raftkv watch``: print changes until Ctrl-C.

The stream follows the cluster, not one member: when its member goes away
it resumes on the next endpoint from the revision after the last one seen,
so no event is lost or repeated.
"""

from __future__ import annotations

import queue
import signal
import threading
import time
from collections.abc import Callable

import click
import grpc

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv.cli import output, rpc
from raftkv.cli.context import CLIError, client, command, settings, write_out
from raftkv.cli.txnparse import check_span
from raftkv.client import ops

_EVENT_NAMES = {0: "PUT", 1: "DELETE"}
_CLOSED = object()


def register(cli: click.Group) -> None:
    cli.add_command(watch)


class Stop(Exception):
    """Ctrl-C or SIGTERM: end cleanly."""


class interruptible:
    """Turn SIGINT and SIGTERM into Stop in the main thread while inside."""

    def __enter__(self) -> interruptible:
        self._saved = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._saved[sig] = signal.signal(sig, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame) -> None:
        raise Stop()

    def __exit__(self, exc_type, exc, tb) -> bool:
        for sig, handler in self._saved.items():
            signal.signal(sig, handler)
        return exc_type is not None and issubclass(exc_type, (Stop, KeyboardInterrupt))


class WatchStream:
    """One Watch RPC on one channel; responses come through a queue a reader
    thread fills, so the main thread stays responsive to Ctrl-C."""

    def __init__(self, channel: grpc.Channel, create: rpc_pb2.WatchCreateRequest) -> None:
        self._requests: queue.Queue = queue.Queue()
        self.responses: queue.Queue = queue.Queue()
        self._requests.put(rpc_pb2.WatchRequest(create_request=create))
        self._call = rpc_pb2_grpc.WatchStub(channel).Watch(iter(self._requests.get, None))
        self.error: grpc.RpcError | None = None
        self._reader = threading.Thread(target=self._read, daemon=True, name="raftkv-cli-watch")
        self._reader.start()

    def _read(self) -> None:
        try:
            for message in self._call:
                self.responses.put(message)
        except grpc.RpcError as e:
            self.error = e
        self.responses.put(_CLOSED)

    def close(self) -> None:
        """End the call; the reader has stopped when this returns."""
        self._requests.put(None)
        self._call.cancel()
        self._reader.join(timeout=5.0)


def follow(create: rpc_pb2.WatchCreateRequest, on_response: Callable[[rpc_pb2.WatchResponse], None],
           *, notice: Callable[[str], None]) -> None:
    """Watch across endpoints until Stop; ``on_response`` gets every
    response carrying events (or canceled). Raises CLIError when the server
    cancels the watch."""
    c = client()
    next_revision = create.start_revision  # 0: from now
    attempt = 0
    failing_since: float | None = None
    order = rpc.endpoint_order(c)
    while True:
        index = order[attempt % len(order)]
        endpoint = c.endpoints[index]
        request = rpc_pb2.WatchCreateRequest()
        request.CopyFrom(create)
        request.start_revision = next_revision
        stream = WatchStream(rpc.channel(c, index), request)
        try:
            while True:
                try:
                    message = stream.responses.get(timeout=0.2)
                except queue.Empty:
                    continue
                if message is _CLOSED:
                    break
                if failing_since is not None:
                    notice(f"watch: resumed on {endpoint} from revision {next_revision}")
                    failing_since = None
                if message.created and not next_revision:
                    next_revision = message.header.revision + 1
                if message.canceled:
                    on_response(message)
                    reason = message.cancel_reason or (
                        "etcdserver: mvcc: required revision has been compacted"
                        if message.compact_revision else "canceled")
                    click.echo(f"watch was canceled ({reason})", err=True)
                    raise CLIError("watch is canceled by the server")
                if message.events:
                    next_revision = message.events[-1].kv.mod_revision + 1
                    on_response(message)
        finally:
            stream.close()
        # the stream ended without a cancel: the member went away
        error = stream.error
        detail = error.code().name.lower() if error is not None else "stream closed"
        if error is not None and error.code() not in (grpc.StatusCode.UNAVAILABLE,
                                                      grpc.StatusCode.CANCELLED,
                                                      grpc.StatusCode.UNKNOWN,
                                                      grpc.StatusCode.INTERNAL):
            raise rpc.typed(error)
        if failing_since is None:
            failing_since = time.monotonic()
            notice(f"watch: lost {endpoint} ({detail}); trying the other endpoints")
        attempt += 1
        if attempt % len(order) == 0:
            time.sleep(1.0)  # every endpoint failed: wait before the next round


@command("watch")
@click.argument("key")
@click.argument("range_end", required=False)
@click.option("--prefix", is_flag=True, help="Every key starting with KEY.")
@click.option("--rev", type=int, default=0, help="Replay from this revision, then follow.")
@click.option("--prev-kv", is_flag=True, help="Print each key's previous value too.")
@click.option("--progress-notify", is_flag=True, help="Ask for periodic progress notifications.")
def watch(key: str, range_end: str | None, prefix: bool, rev: int, prev_kv: bool,
          progress_notify: bool) -> None:
    """Print every change of KEY (or of [KEY, RANGE_END)) until Ctrl-C.

    Each event prints as etcdctl does: PUT or DELETE, then the key and value
    (and with --prev-kv the previous key and value before them).

    \b
    Examples:
        raftkv watch greeting
        raftkv watch app/ --prefix --prev-kv
        raftkv watch greeting --rev 1 -w json      # the whole history, then new changes
    """
    fmt = write_out((output.SIMPLE, output.JSON))
    check_span(range_end, prefix, False)
    k, end = ops.key_span(key.encode(errors="surrogateescape"),
                          range_end.encode(errors="surrogateescape") if range_end is not None else None,
                          prefix=prefix)
    create = rpc_pb2.WatchCreateRequest(key=k, range_end=end, start_revision=rev, prev_kv=prev_kv,
                                        progress_notify=progress_notify)
    hex_ = settings().hex

    def show(response: rpc_pb2.WatchResponse) -> None:
        if fmt == output.JSON:
            output.echo_json({
                "Header": output.pb_to_json(response.header),
                "Events": [output.pb_to_json(e) for e in response.events] or None,
                "CompactRevision": response.compact_revision,
                "Canceled": response.canceled,
                "Created": response.created,
            })
            return
        for event in response.events:
            click.echo(_EVENT_NAMES.get(event.type, str(event.type)))
            if event.HasField("prev_kv"):
                output.echo_kv(event.prev_kv, hex_=hex_)
            output.echo_kv(event.kv, hex_=hex_)

    def notice(text: str) -> None:
        click.echo(text, err=True)

    with interruptible():
        follow(create, show, notice=notice)
