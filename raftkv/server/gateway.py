"""etcd's JSON gateway: the v3 API as JSON over HTTP/1.1, on --listen-client-http-urls.

Every call is a POST to etcd's path for the method (``/v3/kv/range``,
``/v3/watch``, ...) with the request as JSON, answered as etcd 3.4's
grpc-gateway answers: proto field names, 64-bit integers as strings, bytes
as base64, enums by name, fields at their default left out. A streaming
method (watch, lease keep-alive, snapshot, election observe) answers with
one ``{"result": ...}`` object per line; its request body may hold several
JSON objects, sent in turn. An error is ``{"error", "message", "code"}``
with the HTTP status grpc-gateway gives the gRPC code. The same listener
serves GET /health, /version and /metrics.

The gateway is a client of the member's own gRPC server (over a private
Unix socket), so a call takes exactly the path a gRPC client's does.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import grpc
from aiohttp import web
from google.protobuf import json_format
from google.protobuf.message import Message
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv._proto.v3electionpb import v3election_pb2, v3election_pb2_grpc
from raftkv._proto.v3lockpb import v3lock_pb2, v3lock_pb2_grpc
from raftkv.server.context import ServerContext
from raftkv.server.http import health
from raftkv.server.metrics import ServerMetrics

log = logging.getLogger(__name__)

ETCD_CLUSTER_VERSION = "3.4.0"


@dataclass(frozen=True)
class Route:
    stub: type
    method: str
    request: type[Message]
    client_streaming: bool = False
    server_streaming: bool = False


def _routes() -> dict[str, Route]:
    kv, lease, cluster = rpc_pb2_grpc.KVStub, rpc_pb2_grpc.LeaseStub, rpc_pb2_grpc.ClusterStub
    maintenance, auth = rpc_pb2_grpc.MaintenanceStub, rpc_pb2_grpc.AuthStub
    r = rpc_pb2
    routes = {
        "/v3/kv/range": Route(kv, "Range", r.RangeRequest),
        "/v3/kv/put": Route(kv, "Put", r.PutRequest),
        "/v3/kv/deleterange": Route(kv, "DeleteRange", r.DeleteRangeRequest),
        "/v3/kv/txn": Route(kv, "Txn", r.TxnRequest),
        "/v3/kv/compaction": Route(kv, "Compact", r.CompactionRequest),
        "/v3/watch": Route(rpc_pb2_grpc.WatchStub, "Watch", r.WatchRequest, True, True),
        "/v3/lease/grant": Route(lease, "LeaseGrant", r.LeaseGrantRequest),
        "/v3/lease/revoke": Route(lease, "LeaseRevoke", r.LeaseRevokeRequest),
        "/v3/lease/keepalive": Route(lease, "LeaseKeepAlive", r.LeaseKeepAliveRequest, True, True),
        "/v3/lease/timetolive": Route(lease, "LeaseTimeToLive", r.LeaseTimeToLiveRequest),
        "/v3/lease/leases": Route(lease, "LeaseLeases", r.LeaseLeasesRequest),
        "/v3/cluster/member/add": Route(cluster, "MemberAdd", r.MemberAddRequest),
        "/v3/cluster/member/remove": Route(cluster, "MemberRemove", r.MemberRemoveRequest),
        "/v3/cluster/member/update": Route(cluster, "MemberUpdate", r.MemberUpdateRequest),
        "/v3/cluster/member/list": Route(cluster, "MemberList", r.MemberListRequest),
        "/v3/cluster/member/promote": Route(cluster, "MemberPromote", r.MemberPromoteRequest),
        "/v3/maintenance/alarm": Route(maintenance, "Alarm", r.AlarmRequest),
        "/v3/maintenance/status": Route(maintenance, "Status", r.StatusRequest),
        "/v3/maintenance/defragment": Route(maintenance, "Defragment", r.DefragmentRequest),
        "/v3/maintenance/hash": Route(maintenance, "Hash", r.HashRequest),
        "/v3/maintenance/snapshot": Route(maintenance, "Snapshot", r.SnapshotRequest, server_streaming=True),
        "/v3/maintenance/transfer-leadership": Route(maintenance, "MoveLeader", r.MoveLeaderRequest),
        "/v3/auth/enable": Route(auth, "AuthEnable", r.AuthEnableRequest),
        "/v3/auth/disable": Route(auth, "AuthDisable", r.AuthDisableRequest),
        "/v3/auth/authenticate": Route(auth, "Authenticate", r.AuthenticateRequest),
        "/v3/auth/user/add": Route(auth, "UserAdd", r.AuthUserAddRequest),
        "/v3/auth/user/get": Route(auth, "UserGet", r.AuthUserGetRequest),
        "/v3/auth/user/list": Route(auth, "UserList", r.AuthUserListRequest),
        "/v3/auth/user/delete": Route(auth, "UserDelete", r.AuthUserDeleteRequest),
        "/v3/auth/user/changepw": Route(auth, "UserChangePassword", r.AuthUserChangePasswordRequest),
        "/v3/auth/user/grant": Route(auth, "UserGrantRole", r.AuthUserGrantRoleRequest),
        "/v3/auth/user/revoke": Route(auth, "UserRevokeRole", r.AuthUserRevokeRoleRequest),
        "/v3/auth/role/add": Route(auth, "RoleAdd", r.AuthRoleAddRequest),
        "/v3/auth/role/get": Route(auth, "RoleGet", r.AuthRoleGetRequest),
        "/v3/auth/role/list": Route(auth, "RoleList", r.AuthRoleListRequest),
        "/v3/auth/role/delete": Route(auth, "RoleDelete", r.AuthRoleDeleteRequest),
        "/v3/auth/role/grant": Route(auth, "RoleGrantPermission", r.AuthRoleGrantPermissionRequest),
        "/v3/auth/role/revoke": Route(auth, "RoleRevokePermission", r.AuthRoleRevokePermissionRequest),
        "/v3/lock/lock": Route(v3lock_pb2_grpc.LockStub, "Lock", v3lock_pb2.LockRequest),
        "/v3/lock/unlock": Route(v3lock_pb2_grpc.LockStub, "Unlock", v3lock_pb2.UnlockRequest),
    }
    election = v3election_pb2_grpc.ElectionStub
    for name, method, request, streams in (
            ("campaign", "Campaign", v3election_pb2.CampaignRequest, False),
            ("proclaim", "Proclaim", v3election_pb2.ProclaimRequest, False),
            ("leader", "Leader", v3election_pb2.LeaderRequest, False),
            ("observe", "Observe", v3election_pb2.LeaderRequest, True),
            ("resign", "Resign", v3election_pb2.ResignRequest, False)):
        routes[f"/v3/election/{name}"] = Route(election, method, request, server_streaming=streams)
    # etcd 3.4 still answers on the lease paths it had under /v3/kv/
    for old in ("revoke", "timetolive", "leases"):
        routes[f"/v3/kv/lease/{old}"] = routes[f"/v3/lease/{old}"]
    return routes


ROUTES = _routes()

# grpc-gateway's HTTP status for each gRPC code
HTTP_STATUS = {
    grpc.StatusCode.OK: 200, grpc.StatusCode.CANCELLED: 408, grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404, grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.FAILED_PRECONDITION: 412,
    grpc.StatusCode.ABORTED: 409, grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501, grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DATA_LOSS: 500,
}

# every answer carries them, as etcd's gateway sends them
_CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS, PUT, DELETE",
    "Access-Control-Allow-Headers": "accept, content-type, authorization",
}
_JSON_HEADERS = {**_CORS, "Content-Type": "application/json", "Grpc-Metadata-Content-Type": "application/grpc"}


def dumps(value: object) -> bytes:
    """JSON as Go's encoding/json writes it: compact, UTF-8, with <, > and &
    escaped."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text.encode()


def message_to_json(message: Message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


class BadJSON(ValueError):
    """A request body that is not JSON of the method's request."""


def parse_requests(body: bytes, request: type[Message]) -> list[Message]:
    """The request messages in a body: one JSON object (an empty body is an
    empty request), or for a streaming method several, one after another."""
    try:
        text = body.decode()
    except UnicodeDecodeError as e:
        raise BadJSON(f"invalid UTF-8 in the request body: {e.reason}") from None
    decoder = json.JSONDecoder()
    messages, position = [], 0
    while True:
        while position < len(text) and text[position].isspace():
            position += 1
        if position == len(text):
            break
        try:
            value, position = decoder.raw_decode(text, position)
            if not isinstance(value, dict):
                raise BadJSON(f"a {type(value).__name__} where a {request.DESCRIPTOR.name} object belongs")
            messages.append(json_format.ParseDict(value, request(), ignore_unknown_fields=True))
        except (ValueError, json_format.ParseError, TypeError, RecursionError) as e:
            raise BadJSON(str(e)) from None
    return messages or [request()]


def _error_body(code: grpc.StatusCode, message: str) -> bytes:
    return dumps({"error": message, "message": message, "code": code.value[0]})


def _error_reply(code: grpc.StatusCode, message: str) -> web.Response:
    return web.Response(status=HTTP_STATUS.get(code, 500), body=_error_body(code, message), headers=_JSON_HEADERS)


def _text(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, headers={**_CORS, "X-Content-Type-Options": "nosniff"})


class _Handler:
    def __init__(self, ctx: ServerContext, metrics: ServerMetrics, target: str, version: str) -> None:
        self._ctx = ctx
        self._metrics = metrics
        self._target = target
        self._version = version
        self._channel: grpc.aio.Channel | None = None

    def _stub(self, route: Route):
        if self._channel is None:  # made on the gateway's own loop, at the first call
            self._channel = grpc.aio.insecure_channel(
                self._target, options=[("grpc.max_receive_message_length", 2**31 - 1),
                                       ("grpc.max_send_message_length", 2**31 - 1)])
        return route.stub(self._channel)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        if request.method == "GET" and request.path in ("/health", "/version", "/metrics"):
            return await self._get(request.path)
        route = ROUTES.get(request.path)
        if route is None:
            return _text(404, "Not Found\n")
        if request.method != "POST":
            return _text(405, "Method Not Allowed\n")
        try:
            messages = parse_requests(await request.read(), route.request)
        except BadJSON as e:
            return _error_reply(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        metadata = [("authorization", request.headers["Authorization"])] \
            if "Authorization" in request.headers else []
        method = getattr(self._stub(route), route.method)
        if not route.server_streaming:
            try:
                response = await method(messages[0], metadata=metadata)
            except grpc.aio.AioRpcError as e:
                return _error_reply(e.code(), e.details() or "")
            return web.Response(status=200, body=dumps(message_to_json(response)), headers=_JSON_HEADERS)
        call = method(_async_iter(messages) if route.client_streaming else messages[0], metadata=metadata)
        return await self._stream(request, call)

    async def _stream(self, request: web.Request, call) -> web.StreamResponse:
        reply = web.StreamResponse(status=200, headers=_JSON_HEADERS)
        try:
            async for message in call:
                if not reply.prepared:
                    await reply.prepare(request)
                await reply.write(dumps({"result": message_to_json(message)}) + b"\n")
        except grpc.aio.AioRpcError as e:
            if not reply.prepared:
                return _error_reply(e.code(), e.details() or "")
            status = HTTP_STATUS.get(e.code(), 500)
            await reply.write(dumps({"error": {"grpc_code": e.code().value[0], "http_code": status,
                                               "message": e.details() or "",
                                               "http_status": web.Response(status=status).reason}}) + b"\n")
        finally:
            call.cancel()  # the HTTP client went away, or the stream ended
        if not reply.prepared:
            await reply.prepare(request)
        await reply.write_eof()
        return reply

    async def _get(self, path: str) -> web.Response:
        if path == "/version":
            return web.Response(body=dumps({"etcdserver": self._version, "etcdcluster": ETCD_CLUSTER_VERSION}),
                                headers={**_CORS, "Content-Type": "application/json"})
        if path == "/health":
            healthy, body = await asyncio.get_running_loop().run_in_executor(None, health, self._ctx, self._metrics)
            return web.Response(status=200 if healthy else 503, text=body, headers=_CORS)
        body = await asyncio.get_running_loop().run_in_executor(None, generate_latest, self._metrics.registry)
        return web.Response(body=body, headers={**_CORS, "Content-Type": CONTENT_TYPE_LATEST})


async def _async_iter(messages: list[Message]) -> AsyncIterator[Message]:
    for message in messages:
        yield message


class GatewayServer:
    """The listeners of --listen-client-http-urls, on one event loop thread of their own."""

    def __init__(self, ctx: ServerContext, metrics: ServerMetrics, urls: list[str], grpc_target: str,
                 version: str, max_body_bytes: int, tls: ssl.SSLContext | None = None) -> None:
        self.urls = list(urls)
        self._addresses = []
        for url in urls:
            parsed = urlsplit(url if "://" in url else "http://" + url)
            if parsed.scheme not in ("http", "https"):
                raise ValueError(f"--listen-client-http-urls: {url!r} is not an http(s) URL")
            if parsed.scheme == "https" and tls is None:
                raise ValueError(f"--listen-client-http-urls: {url!r} needs --cert-file and --key-file")
            if parsed.port is None:
                raise ValueError(f"--listen-client-http-urls: {url!r} has no port")
            self._addresses.append((parsed.hostname or "", parsed.port, tls if parsed.scheme == "https" else None))
        self._handler = _Handler(ctx, metrics, grpc_target, version)
        self._max_body_bytes = max_body_bytes
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="raftkv-gateway", daemon=True)
        self._runner: web.AppRunner | None = None
        self._sites: list[web.TCPSite] = []

    def start(self) -> None:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result()
        except BaseException:
            self.stop()
            raise

    async def _start(self) -> None:
        app = web.Application(client_max_size=self._max_body_bytes)
        app.router.add_route("*", "/{tail:.*}", self._handler)
        # a handler ends when its client goes away: a watch nobody reads is cancelled
        self._runner = web.AppRunner(app, handler_cancellation=True, access_log=None)
        await self._runner.setup()
        for host, port, tls in self._addresses:
            site = web.TCPSite(self._runner, host or None, port, ssl_context=tls, backlog=1024,
                               reuse_address=True)
            try:
                await site.start()
            except OSError as e:
                raise OSError(e.errno, f"--listen-client-http-urls: cannot listen on {host}:{port}: "
                                       f"{e.strerror}") from None
            self._sites.append(site)

    def stop(self) -> None:
        async def stop() -> None:
            if self._runner is not None:
                await self._runner.cleanup()
            await self._handler.close()
        if self._thread.is_alive():
            try:
                asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=5)
            finally:
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=5)
