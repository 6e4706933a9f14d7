"""The member's HTTP endpoints on --listen-metrics-urls: /health and /metrics.

/health answers as etcd 3.4 does: 200 with ``{"health":"true"}`` when the
member has a leader and a linearizable read completes within a second,
otherwise 503 with ``{"health":"false"}``; any method but GET gets 405.
/metrics is the Prometheus text exposition of the member's registry.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from raftkv.server.context import ServerContext
from raftkv.server.metrics import ServerMetrics

log = logging.getLogger(__name__)

HEALTH_TIMEOUT = 1.0  # etcd gives its health read one second


def check_health(ctx: ServerContext, timeout: float = HEALTH_TIMEOUT) -> bool:
    """True when the member has a leader and serves a linearizable read."""
    kv = ctx.kv
    try:
        if not kv.status().leader:
            log.warning("/health error; no leader")
            return False
        member = getattr(kv, "member", None)
        if member is not None and hasattr(member, "read_barrier"):
            member.read_barrier(timeout=timeout)
        else:
            kv.get(b"health")
    except Exception as e:
        log.warning("/health error; read failed error=%s", e)
        return False
    return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        log.debug("http %s %s", self.address_string(), format % args)

    def send_response(self, code: int, message: str | None = None) -> None:
        # as Go's net/http: a Date header, no Server header
        self.log_request(code)
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def _reply(self, code: int, body: bytes, content_type: str, **headers: str) -> None:
        self.send_response(code)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _error(self, code: int, text: str, **headers: str) -> None:
        # Go's http.Error
        self._reply(code, (text + "\n").encode(), "text/plain; charset=utf-8",
                    X_Content_Type_Options="nosniff", **headers)

    def _route(self) -> None:
        path = urlsplit(self.path).path
        if path == "/health":
            if self.command != "GET":
                self._error(405, "Method Not Allowed", Allow="GET")
                return
            healthy = check_health(self.server.ctx)
            metrics = self.server.metrics
            (metrics.health_success if healthy else metrics.health_failures).inc()
            body = json.dumps({"health": "true" if healthy else "false"}, separators=(",", ":"))
            if healthy:
                self._reply(200, body.encode(), "text/plain; charset=utf-8")
            else:
                self._error(503, body)
        elif path == "/metrics":
            self._reply(200, generate_latest(self.server.metrics.registry), CONTENT_TYPE_LATEST)
        else:
            self._error(404, "404 page not found")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = do_OPTIONS = _route


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], ctx: ServerContext, metrics: ServerMetrics,
                 tls: ssl.SSLContext | None) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.tls = tls
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)

    def finish_request(self, request, client_address) -> None:
        # runs on the connection's own thread: a slow TLS handshake holds up no one else
        if self.tls is not None:
            request = self.tls.wrap_socket(request, server_side=True)
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address) -> None:
        log.debug("http connection failed peer=%s", client_address, exc_info=True)


class MetricsHTTPServer:
    """One HTTP listener per --listen-metrics-urls URL."""

    def __init__(self, ctx: ServerContext, metrics: ServerMetrics, urls: list[str],
                 tls: ssl.SSLContext | None = None) -> None:
        self._servers: list[_HTTPServer] = []
        self._threads: list[threading.Thread] = []
        try:
            for url in urls:
                parsed = urlsplit(url if "://" in url else "http://" + url)
                if parsed.scheme not in ("http", "https"):
                    raise ValueError(f"--listen-metrics-urls: {url!r} is not an http(s) URL")
                if parsed.scheme == "https" and tls is None:
                    raise ValueError(f"--listen-metrics-urls: {url!r} needs --cert-file and --key-file")
                if parsed.port is None:
                    raise ValueError(f"--listen-metrics-urls: {url!r} has no port")
                server = _HTTPServer((parsed.hostname or "", parsed.port), ctx, metrics,
                                     tls if parsed.scheme == "https" else None)
                self._servers.append(server)
        except BaseException:
            self.stop()
            raise
        self.urls = list(urls)

    @property
    def ports(self) -> list[int]:
        return [server.server_address[1] for server in self._servers]

    def start(self) -> None:
        for server in self._servers:
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                      name="raftkv-metrics-http", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        for server in self._servers:
            if self._threads:
                server.shutdown()
            server.server_close()
        self._servers, self._threads = [], []
