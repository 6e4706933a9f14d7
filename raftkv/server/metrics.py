"""Prometheus metrics of one member: its gRPC traffic and its Raft and MVCC state.

The gRPC series are go-grpc-prometheus's, as etcd exports them
(``grpc_server_started_total``, ``grpc_server_handled_total`` with Go's
code names, ``grpc_server_msg_received_total``, ``grpc_server_msg_sent_total``,
and the ``grpc_server_handling_seconds`` histogram that etcd adds with
``--metrics extensive``); an interceptor records them, so the servicers stay
free of bookkeeping. The member's state is read when scraped, under etcd's
names where etcd has one and under ``raftkv_`` where it has none.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator

import grpc
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from raftkv.mvcc.quota import effective_quota
from raftkv.server.context import ServerContext
from raftkv.server.decoding import handler_parts

log = logging.getLogger(__name__)

# Go's names of the status codes, as go-grpc-prometheus labels them
GO_CODE_NAMES = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}

# Prometheus' Go client's default buckets (go-grpc-prometheus uses them)
HANDLING_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

_LABELS = ("grpc_type", "grpc_service", "grpc_method")


class ServerMetrics:
    """The registry a member's /metrics serves, and what fills it."""

    def __init__(self, ctx: ServerContext, version: str) -> None:
        self.ctx = ctx
        self.registry = registry = CollectorRegistry()
        self.started = Counter(
            "grpc_server_started_total", "Total number of RPCs started on the server.",
            _LABELS, registry=registry)
        self.handled = Counter(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            (*_LABELS, "grpc_code"), registry=registry)
        self.received = Counter(
            "grpc_server_msg_received_total", "Total number of RPC stream messages received on the server.",
            _LABELS, registry=registry)
        self.sent = Counter(
            "grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.",
            _LABELS, registry=registry)
        self.handling = Histogram(
            "grpc_server_handling_seconds",
            "Histogram of response latency (seconds) of gRPC that had been application-level "
            "handled by the server.",
            _LABELS, buckets=HANDLING_BUCKETS, registry=registry)
        self.health_success = Counter(
            "etcd_server_health_success", "The total number of successful health checks",
            registry=registry)
        self.health_failures = Counter(
            "etcd_server_health_failures", "The total number of failed health checks",
            registry=registry)
        registry.register(MemberCollector(ctx, version))
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)

    def interceptor(self) -> grpc.ServerInterceptor:
        return MetricsInterceptor(self)

    def record_done(self, labels: tuple[str, str, str], code: grpc.StatusCode | None, began: float) -> None:
        self.handled.labels(*labels, GO_CODE_NAMES.get(code, "Unknown")).inc()
        self.handling.labels(*labels).observe(time.perf_counter() - began)


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Wraps every method's handler to count and time its calls."""

    def __init__(self, metrics: ServerMetrics) -> None:
        self._metrics = metrics
        self._wrapped: dict[str, grpc.RpcMethodHandler] = {}  # built once per method

    async def intercept_service(self, continuation, handler_call_details):
        wrapped = self._wrapped.get(handler_call_details.method)
        if wrapped is None:
            wrapped = self._wrap(await continuation(handler_call_details), handler_call_details)
            if wrapped is not None:
                self._wrapped[handler_call_details.method] = wrapped
        return wrapped

    def _wrap(self, handler, handler_call_details):
        if handler is None:
            return None
        service, _, method = handler_call_details.method.lstrip("/").partition("/")
        inner, make, is_async = handler_parts(handler)
        if handler.request_streaming and handler.response_streaming:
            kind = "bidi_stream"
        elif handler.request_streaming:
            kind = "client_stream"
        elif handler.response_streaming:
            kind = "server_stream"
        else:
            kind = "unary"
        labels = (kind, service, method)
        if is_async and handler.response_streaming:
            behavior = self._async_streaming(labels, inner, handler.request_streaming)
        elif is_async:
            behavior = self._async_unary(labels, inner, handler.request_streaming)
        elif handler.response_streaming:
            raise TypeError(f"{method}: a stream must be a coroutine (a thread per open stream starves the server)")
        else:
            behavior = self._unary(labels, inner, handler.request_streaming)
        return make(behavior, request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer)

    def _requests(self, labels, requests: Iterator) -> Iterator:
        received = self._metrics.received.labels(*labels)
        for request in requests:
            received.inc()
            yield request

    async def _async_requests(self, labels, requests: AsyncIterator) -> AsyncIterator:
        received = self._metrics.received.labels(*labels)
        async for request in requests:
            received.inc()
            yield request

    def _unary(self, labels, inner: Callable, request_streaming: bool) -> Callable:
        metrics = self._metrics

        started = metrics.started.labels(*labels)
        received = metrics.received.labels(*labels)
        sent = metrics.sent.labels(*labels)

        def behavior(request, context):
            started.inc()
            if request_streaming:
                request = self._requests(labels, request)
            else:
                received.inc()
            finish = _Once(labels, metrics, time.perf_counter())
            recorded = _RecordingContext(context, finish)
            try:
                response = inner(request, recorded)
            except BaseException:
                finish(recorded.outcome(grpc.StatusCode.UNKNOWN))
                raise
            finish(recorded.outcome(grpc.StatusCode.OK))
            sent.inc()
            return response

        return behavior

    def _async_unary(self, labels, inner: Callable, request_streaming: bool) -> Callable:
        metrics = self._metrics

        async def behavior(request, context):
            metrics.started.labels(*labels).inc()
            if request_streaming:
                request = self._async_requests(labels, request)
            else:
                metrics.received.labels(*labels).inc()
            finish = _Once(labels, metrics, time.perf_counter())
            try:
                response = await inner(request, _AsyncRecordingContext(context, finish))
            except asyncio.CancelledError:
                finish(grpc.StatusCode.CANCELLED)
                raise
            except BaseException:
                finish(_outcome(context, grpc.StatusCode.UNKNOWN))
                raise
            finish(_outcome(context, grpc.StatusCode.OK))
            metrics.sent.labels(*labels).inc()
            return response

        return behavior

    def _async_streaming(self, labels, inner: Callable, request_streaming: bool) -> Callable:
        metrics = self._metrics

        async def behavior(request, context):
            metrics.started.labels(*labels).inc()
            if request_streaming:
                request = self._async_requests(labels, request)
            else:
                metrics.received.labels(*labels).inc()
            began = time.perf_counter()
            sent = metrics.sent.labels(*labels)
            code = grpc.StatusCode.UNKNOWN
            try:
                async for response in inner(request, context):
                    sent.inc()
                    yield response
                code = _outcome(context, grpc.StatusCode.OK)
            except (GeneratorExit, asyncio.CancelledError):
                code = grpc.StatusCode.CANCELLED  # the caller left mid-stream
                raise
            except BaseException:
                code = _outcome(context, grpc.StatusCode.UNKNOWN)
                raise
            finally:
                metrics.record_done(labels, code, began)

        return behavior


def _outcome(context: grpc.aio.ServicerContext, default: grpc.StatusCode) -> grpc.StatusCode:
    """The status a coroutine's call ended with: the one it set; else, when
    the call is already over (the caller canceled or its deadline passed),
    that; else ``default``."""
    code = context.code()
    if code is not None:
        return code if isinstance(code, grpc.StatusCode) else _CODES.get(code, default)
    if context.cancelled():
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return grpc.StatusCode.CANCELLED
    return default


_CODES = {code.value[0]: code for code in grpc.StatusCode}


class _Once:
    """Counts a call as handled, once: at its abort, before the status goes
    out (a caller that reads the metrics right after the error must find
    the call counted), or when the handler returns."""

    def __init__(self, labels: tuple[str, str, str], metrics: ServerMetrics, began: float) -> None:
        self._labels, self._metrics, self._began = labels, metrics, began
        self._done = False

    def __call__(self, code: grpc.StatusCode | None) -> None:
        if not self._done:
            self._done = True
            self._metrics.record_done(self._labels, code, self._began)


class _RecordingContext:
    """A plain function's context that remembers the status it was given
    (gRPC's context for functions under asyncio cannot be asked)."""

    def __init__(self, context, finish: _Once) -> None:
        self._context = context
        self._finish = finish
        self._code: grpc.StatusCode | None = None

    def abort(self, code: grpc.StatusCode, details: str):
        self._code = code
        self._finish(code)
        return self._context.abort(code, details)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code
        self._context.set_code(code)

    def outcome(self, default: grpc.StatusCode) -> grpc.StatusCode:
        if self._code is not None:
            return self._code
        remaining = self._context.time_remaining()
        if remaining is not None and remaining <= 0:
            return grpc.StatusCode.DEADLINE_EXCEEDED
        return default

    def __getattr__(self, name: str):
        return getattr(self._context, name)


class _AsyncRecordingContext:
    """A coroutine's context that counts the call before its abort goes out."""

    def __init__(self, context: grpc.aio.ServicerContext, finish: _Once) -> None:
        self._context = context
        self._finish = finish

    async def abort(self, code: grpc.StatusCode, details: str = "", *args):
        self._finish(code)
        return await self._context.abort(code, details, *args)

    def __getattr__(self, name: str):
        return getattr(self._context, name)


class MemberCollector:
    """The member's Raft and MVCC state, read at every scrape."""

    def __init__(self, ctx: ServerContext, version: str) -> None:
        self._ctx = ctx
        self._version = version

    def describe(self):
        return []  # unknown until collected: do not collect at registration

    def collect(self):
        ctx = self._ctx
        try:
            status = ctx.kv.status()
        except Exception as e:  # a stopping member: report what does not need it
            log.debug("metrics: no status error=%s", e)
            status = None

        def gauge(name: str, doc: str, value: float, **labels: str) -> GaugeMetricFamily:
            family = GaugeMetricFamily(name, doc, labels=list(labels))
            family.add_metric(list(labels.values()), value)
            return family

        yield gauge("etcd_server_version", "Which version is running. 1 for 'server_version' label "
                    "with current version.", 1, server_version=self._version)
        yield gauge("etcd_server_id", "Server or member ID in hexadecimal format. 1 for "
                    "'server_id' label with current ID.", 1, server_id=format(ctx.member_id, "x"))
        if status is None:
            return
        committed, applied = status.raft_index, status.raft_applied_index
        yield gauge("etcd_server_has_leader", "Whether or not a leader exists. 1 is existence, "
                    "0 is not.", 1 if status.leader else 0)
        yield gauge("etcd_server_is_leader", "Whether or not this member is a leader. 1 if is, "
                    "0 otherwise.", 1 if status.leader and status.leader == ctx.member_id else 0)
        yield gauge("etcd_server_proposals_committed_total",
                    "The total number of consensus proposals committed.", committed)
        yield gauge("etcd_server_proposals_applied_total",
                    "The total number of consensus proposals applied.", applied)
        yield gauge("raftkv_server_raft_term", "The Raft term this member is in.", status.raft_term)
        leader = GaugeMetricFamily(
            "raftkv_server_leader_info", "The member this one follows (or is): 1 for the "
            "'leader_id' label with the leader's ID in hexadecimal; no sample without a leader.",
            labels=["leader_id"])
        if status.leader:
            leader.add_metric([format(status.leader, "x")], 1)
        yield leader
        yield gauge("etcd_debugging_mvcc_watcher_total", "Total number of watchers.",
                    status.watcher_count)
        yield gauge("etcd_debugging_mvcc_keys_total", "Total number of keys.", status.key_count)
        yield gauge("etcd_debugging_mvcc_current_revision",
                    "The current revision of store.", status.revision)
        yield gauge("etcd_debugging_mvcc_compact_revision",
                    "The revision of the last compaction in store.", status.compact_revision)
        yield gauge("raftkv_server_lease_count", "Leases currently granted.", status.lease_count)
        stats = ctx.kv.raft_stats()
        if stats is not None:
            yield CounterMetricFamily("etcd_server_leader_changes_seen", "The number of leader changes seen.",
                                      value=stats.leader_changes)
            yield gauge("etcd_server_proposals_pending", "The current number of pending proposals to commit.",
                        stats.proposals_pending)
            yield CounterMetricFamily("etcd_server_proposals_failed", "The total number of failed proposals seen.",
                                      value=stats.proposals_failed)
            fsync = stats.fsync
            yield HistogramMetricFamily(
                "etcd_disk_wal_fsync_duration_seconds", "The latency distributions of fsync called by WAL.",
                buckets=[*((f"{bound:g}", count) for bound, count in zip(fsync.buckets, fsync.counts)),
                         ("+Inf", fsync.counts[-1])],
                sum_value=fsync.total)
        yield gauge("etcd_mvcc_db_total_size_in_bytes", "Total size of the underlying database "
                    "physically allocated in bytes.", status.db_size)
        yield gauge("etcd_mvcc_db_total_size_in_use_in_bytes", "Total size of the underlying "
                    "database logically in use in bytes.", status.db_size_in_use)
        with ctx.local_store() as store:
            configured = store.limits.quota_backend_bytes if store is not None else None
        if configured is not None:
            quota = effective_quota(configured)
            yield gauge("etcd_server_quota_backend_bytes", "Current backend storage quota size in bytes.",
                        configured if quota is None else quota)
