"""The member's HTTP endpoints on --listen-metrics-urls: /health and /metrics.

/health answers as etcd 3.4 does: 200 with ``{"health":"true"}`` when the
member has a leader and a linearizable read completes within a second,
otherwise 503 with ``{"health":"false"}``; any method but GET gets 405.
/metrics is the Prometheus text exposition of the member's registry.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import ssl
import threading
from concurrent import futures
from dataclasses import dataclass
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
        kv.read_barrier(timeout)
    except Exception as e:
        log.warning("/health error; read failed error=%s", e)
        return False
    return True


def health(ctx: ServerContext, metrics: ServerMetrics) -> tuple[bool, str]:
    """The answer to GET /health, counted in etcd's health metrics: whether
    the member is healthy, and etcd's body."""
    healthy = check_health(ctx)
    (metrics.health_success if healthy else metrics.health_failures).inc()
    return healthy, json.dumps({"health": "true" if healthy else "false"}, separators=(",", ":"))


# What one connection may send and how long it may take: a client that
# trickles, or opens connections and sends nothing, holds a coroutine for a
# while, not a thread, and then loses its connection.
MAX_REQUEST_HEAD = 16 * 1024      # request line and headers
MAX_REQUEST_BODY = 1024 * 1024    # bodies are read and ignored
REQUEST_TIMEOUT = 10.0            # to send a request's head (and body) once it started
IDLE_TIMEOUT = 60.0               # between requests on a kept-alive connection
MAX_CONNECTIONS = 1024            # beyond, a new connection is closed at once
_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
            413: "Request Entity Too Large", 503: "Service Unavailable"}


class _BadRequest(Exception):
    """The connection sent something that is not an HTTP/1.x request we take."""


@dataclass
class _Request:
    method: str
    path: str
    version: str
    headers: dict[str, str]

    @property
    def keep_alive(self) -> bool:
        connection = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return connection == "keep-alive"
        return connection != "close"


class _Reply:
    def __init__(self, code: int, body: bytes, content_type: str, **headers: str) -> None:
        self.code, self.body, self.content_type, self.headers = code, body, content_type, headers

    @classmethod
    def error(cls, code: int, text: str, **headers: str) -> _Reply:
        # Go's http.Error
        return cls(code, (text + "\n").encode(), "text/plain; charset=utf-8",
                   X_Content_Type_Options="nosniff", **headers)

    def encode(self, head_only: bool, keep_alive: bool) -> bytes:
        # as Go's net/http: a Date header, no Server header
        lines = [f"HTTP/1.1 {self.code} {_REASONS.get(self.code, 'Unknown')}",
                 f"Date: {email.utils.formatdate(usegmt=True)}"]
        lines += [f"{name.replace('_', '-')}: {value}" for name, value in self.headers.items()]
        lines += [f"Content-Type: {self.content_type}", f"Content-Length: {len(self.body)}"]
        if not keep_alive:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        return head if head_only else head + self.body


async def _read_request(reader: asyncio.StreamReader, first_timeout: float) -> _Request | None:
    """The next request's head (its body read and dropped); None when the client closed."""
    try:
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), first_timeout)
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            return None
        raise _BadRequest("cut short") from None
    except asyncio.LimitOverrunError:
        raise _BadRequest("request head too large") from None
    lines = head.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1]:
        raise _BadRequest("malformed request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise _BadRequest("malformed header")
        headers[name.lower()] = value.strip()
    if "transfer-encoding" in headers:
        raise _BadRequest("chunked bodies are not taken")
    length = headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_REQUEST_BODY:
        raise _BadRequest("bad or too large Content-Length")
    if int(length):
        await asyncio.wait_for(reader.readexactly(int(length)), REQUEST_TIMEOUT)
    return _Request(parts[0], parts[1], parts[2], headers)


class _HTTPListener:
    """One listening socket on the event loop."""

    def __init__(self, ctx: ServerContext, metrics: ServerMetrics, pool: futures.ThreadPoolExecutor) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.pool = pool
        self.connections = 0

    async def route(self, request: _Request) -> _Reply:
        target = request.path
        if target.startswith("/"):  # origin-form, the usual: a path and a query
            path = target.partition("?")[0]
        else:  # absolute-form (http://host/path), as proxies send it
            try:
                path = urlsplit(target).path
            except ValueError:  # e.g. http://[/health: not a URL
                return _Reply.error(400, "400 Bad Request")
        loop = asyncio.get_running_loop()
        if path == "/health":
            if request.method != "GET":
                return _Reply.error(405, "Method Not Allowed", Allow="GET")
            healthy, body = await loop.run_in_executor(self.pool, health, self.ctx, self.metrics)
            if healthy:
                return _Reply(200, body.encode(), "text/plain; charset=utf-8")
            return _Reply.error(503, body)
        if path == "/metrics":
            data = await loop.run_in_executor(self.pool, generate_latest, self.metrics.registry)
            return _Reply(200, data, CONTENT_TYPE_LATEST)
        return _Reply.error(404, "404 page not found")

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if self.connections >= MAX_CONNECTIONS:
            log.debug("http connection refused (too many) peer=%s", peer)
            writer.close()
            return
        self.connections += 1
        try:
            timeout = REQUEST_TIMEOUT
            while True:
                try:
                    request = await _read_request(reader, timeout)
                except _BadRequest as e:
                    log.debug("http bad request peer=%s error=%s", peer, e)
                    writer.write(_Reply.error(400, "400 Bad Request").encode(False, False))
                    await writer.drain()
                    return
                if request is None:
                    return
                reply = await self.route(request)
                log.debug("http %s %s %s %d", peer, request.method, request.path, reply.code)
                writer.write(reply.encode(request.method == "HEAD", request.keep_alive))
                await writer.drain()
                if not request.keep_alive:
                    return
                timeout = IDLE_TIMEOUT
        except (asyncio.TimeoutError, ConnectionError, ssl.SSLError, asyncio.IncompleteReadError) as e:
            log.debug("http connection ended peer=%s error=%r", peer, e)
        finally:
            self.connections -= 1
            writer.close()


class MetricsHTTPServer:
    """The listeners of --listen-metrics-urls, on one event loop thread of their own."""

    def __init__(self, ctx: ServerContext, metrics: ServerMetrics, urls: list[str],
                 tls: ssl.SSLContext | None = None) -> None:
        addresses = []
        for url in urls:
            parsed = urlsplit(url if "://" in url else "http://" + url)
            if parsed.scheme not in ("http", "https"):
                raise ValueError(f"--listen-metrics-urls: {url!r} is not an http(s) URL")
            if parsed.scheme == "https" and tls is None:
                raise ValueError(f"--listen-metrics-urls: {url!r} needs --cert-file and --key-file")
            if parsed.port is None:
                raise ValueError(f"--listen-metrics-urls: {url!r} has no port")
            addresses.append((parsed.hostname or "", parsed.port, tls if parsed.scheme == "https" else None))
        self.urls = list(urls)
        self._pool = futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="raftkv-http")
        self._listener = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="raftkv-metrics-http", daemon=True)
        self._servers: list[asyncio.base_events.Server] = []
        self._thread.start()
        try:
            self._servers = asyncio.run_coroutine_threadsafe(self._bind(ctx, metrics, addresses),
                                                             self._loop).result()
        except BaseException:
            self.stop()
            raise

    async def _bind(self, ctx, metrics, addresses) -> list:
        listener = _HTTPListener(ctx, metrics, self._pool)
        servers = []
        for host, port, tls in addresses:
            try:
                servers.append(await asyncio.start_server(
                    listener.serve, host or None, port, ssl=tls, backlog=1024, limit=MAX_REQUEST_HEAD,
                    ssl_handshake_timeout=REQUEST_TIMEOUT if tls else None, start_serving=False))
            except OSError as e:
                for server in servers:
                    server.close()
                raise OSError(e.errno, f"--listen-metrics-urls: cannot listen on {host}:{port}: "
                                       f"{e.strerror}") from None
        return servers

    @property
    def ports(self) -> list[int]:
        return [server.sockets[0].getsockname()[1] for server in self._servers]

    def start(self) -> None:
        async def start() -> None:
            for server in self._servers:
                await server.start_serving()
        asyncio.run_coroutine_threadsafe(start(), self._loop).result()

    def stop(self) -> None:
        async def stop() -> None:
            for server in self._servers:
                server.close()
        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=5)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=5)
        self._servers = []
        self._pool.shutdown(wait=False, cancel_futures=True)
