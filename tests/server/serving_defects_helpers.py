"""Helpers for test_serving_defects.py: raftkv and etcd members side by side,
a watch stream read on a thread of its own, and the memory of a process."""

from __future__ import annotations

import os
import queue
import threading
import time
from dataclasses import dataclass

import grpc

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv.cluster.local import EtcdCluster, LocalCluster, free_ports

ETCD_BIN = EtcdCluster.ETCD
HAVE_ETCD = os.path.exists(ETCD_BIN)
KINDS = ("raftkv", "etcd")

UNLIMITED = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


@dataclass
class Server:
    """One single-member cluster: ``raftkv serve`` or a real etcd, with
    /health and /metrics on a port of its own."""

    kind: str
    cluster: LocalCluster
    metrics_port: int

    @property
    def endpoint(self) -> str:
        return self.cluster.members[0].endpoint

    @property
    def pid(self) -> int:
        return self.cluster.members[0].process.pid

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}"

    @property
    def running(self) -> bool:
        return self.cluster.members[0].running

    def channel(self, *options) -> grpc.Channel:
        return grpc.insecure_channel(self.endpoint, options=list(options))

    def stop(self) -> None:
        self.cluster.stop()


def start_server(kind: str, base_dir: str, extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None, timeout: float = 30.0) -> Server:
    (port,) = free_ports(1)
    cls = LocalCluster if kind == "raftkv" else EtcdCluster
    cluster = cls(1, base_dir, extra_args=["--listen-metrics-urls", f"http://127.0.0.1:{port}",
                                           *(extra_args or [])], env=env)
    try:
        cluster.start(timeout=timeout)
    except BaseException:
        cluster.stop()
        raise
    return Server(kind, cluster, port)


# ---- memory and threads ------------------------------------------------------------


def rss(pid: int, field: str = "VmRSS") -> int:
    """Bytes of the process's resident memory (or another Vm* field) now."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for pid {pid}")


def settled_rss(pid: int, settle: float = 1.0, window: float = 3.0) -> int:
    """The resident memory once things have settled: the least of samples
    every 0.5 s over ``window`` seconds, after ``settle`` seconds. Garbage a
    runtime has freed but not yet given back (Go's heap, etcd's) does not
    count; what the process holds on to does."""
    time.sleep(settle)
    values = [rss(pid)]
    deadline = time.monotonic() + window
    while time.monotonic() < deadline:
        time.sleep(0.5)
        values.append(rss(pid))
    return min(values)


def threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


MB = 1_000_000


def mb(n: float) -> str:
    return f"{n / MB:.1f} MB"


# ---- a watch stream ----------------------------------------------------------------


class WatchStream:
    """A Watch call whose responses a thread of its own collects.

    Requests go out from a queue (``send``); the stream's send side stays
    open until ``close_send`` or ``close``. With ``read=False`` nothing is
    read until ``start_reading``: a client that does not keep up."""

    def __init__(self, channel: grpc.Channel, *creates: rpc_pb2.WatchCreateRequest,
                 read: bool = True, timeout: float = 120.0, requests=None) -> None:
        self._requests: queue.Queue = queue.Queue()
        for create in creates:
            self.send(rpc_pb2.WatchRequest(create_request=create))
        self.responses: list[rpc_pb2.WatchResponse] = []
        self.error: grpc.RpcError | None = None
        self.ended = threading.Event()
        self._reading = threading.Event()
        if read:
            self._reading.set()
        self._cond = threading.Condition()
        self.call = rpc_pb2_grpc.WatchStub(channel).Watch(
            requests if requests is not None else self._iterate(), timeout=timeout)
        self._thread = threading.Thread(target=self._read, daemon=True, name="test-watch-reader")
        self._thread.start()

    def send(self, request: rpc_pb2.WatchRequest) -> None:
        self._requests.put(request)

    def close_send(self) -> None:
        self._requests.put(None)

    def start_reading(self) -> None:
        self._reading.set()

    def _iterate(self):
        while True:
            request = self._requests.get()
            if request is None:
                return
            yield request

    def _read(self) -> None:
        self._reading.wait()
        try:
            for response in self.call:
                with self._cond:
                    self.responses.append(response)
                    self._cond.notify_all()
        except grpc.RpcError as e:
            self.error = e
        finally:
            with self._cond:
                self.ended.set()
                self._cond.notify_all()

    def events(self) -> list:
        with self._cond:
            return [event for response in self.responses for event in response.events]

    def wait(self, condition, timeout: float) -> bool:
        """Wait until ``condition()`` holds (True) or the deadline passes or
        the stream ends without it (False)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while not condition():
                left = deadline - time.monotonic()
                if left <= 0 or self.ended.is_set():
                    return bool(condition())
                self._cond.wait(min(left, 0.2))
            return True

    def wait_events(self, count: int, timeout: float) -> bool:
        return self.wait(lambda: sum(len(r.events) for r in self.responses) >= count, timeout)

    def describe(self) -> str:
        error = f"{self.error.code()}: {self.error.details()}" if self.error is not None else None
        status = None
        if self.ended.is_set() and self.error is None:
            status = f"ended with {self.call.code()} {self.call.details()!r}"
        canceled = [(r.watch_id, r.cancel_reason, r.compact_revision) for r in self.responses if r.canceled]
        return (f"{len(self.responses)} responses, {len(self.events())} events, error={error}, "
                f"status={status}, canceled={canceled}")

    def close(self) -> None:
        self._requests.put(None)
        self.call.cancel()
        self._thread.join(timeout=10)
