"""The HTTP side of ``raftkv apiserver``: requests to object-store calls.

The object store is synchronous (it makes etcd requests), so every call
runs in a thread pool; a watch is a chunked stream of JSON events fed from
a thread of its own (``_EventPump``), never from the pool: as kube-apiserver
leaves long-running requests out of its in-flight limits, no number of open
watches can hold up the other requests or each other.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp import web

from raftkv.apiserver import discovery, openapi, protobuf, tables
from raftkv.apiserver.paths import ResourcePath, parse
from raftkv.apiserver.subresources import bind_pod, typed_body
from raftkv.objects import BadRequest, InternalError, MethodNotAllowed, NotFound, ObjectError, ObjectStore, WritePart

log = logging.getLogger(__name__)

PATCH_TYPES = {
    "application/merge-patch+json": "merge",
    "application/json-patch+json": "json",
    "application/strategic-merge-patch+json": "strategic",
}
WATCH_POLL_SECONDS = 1.0


def _json(value: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(value, separators=(",", ":")).encode(),
                        content_type="application/json")


def _int(value: str | None) -> int:
    try:
        return int(value or 0)
    except ValueError:
        raise BadRequest(f"invalid number: {value!r}") from None


def _status(error: ObjectError) -> web.Response:
    return _json(error.status(), error.code)


class UnsupportedMediaType(ObjectError):
    code = 415
    reason = "UnsupportedMediaType"

    @classmethod
    def of(cls, content_type: str) -> UnsupportedMediaType:
        return cls(f"the body of the request was in an unknown format - accepted media types include: "
                   f"application/json, {protobuf.CONTENT_TYPE} (not {content_type})")


class ApiServer:
    def __init__(self, store: ObjectStore, max_workers: int = 64) -> None:
        self.store = store
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="raftkv-apiserver")

    def application(self) -> web.Application:
        app = web.Application(client_max_size=3 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def _call(self, fn, *args, **kwargs):
        return await asyncio.get_running_loop().run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            return await self._route(request)
        except ObjectError as e:
            return _status(e)
        except Exception as e:  # noqa: BLE001 - a Status for the client, the trace for the log
            log.exception("request failed method=%s path=%s", request.method, request.path)
            return _status(InternalError(f"an error on the server ({type(e).__name__}: {e}) has prevented "
                                         f"the request from succeeding"))

    async def _route(self, request: web.Request) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        kinds = self.store.kinds
        if path in ("/healthz", "/readyz", "/livez"):
            return web.Response(text="ok")
        if path == "/version":
            return _json(discovery.KUBERNETES_VERSION)
        if path in ("/api", "/apis") and discovery.wants_aggregated(request.headers.get("Accept", "")):
            answer = _json(discovery.aggregated(kinds, core=path == "/api"))
            answer.headers["Content-Type"] = discovery.AGGREGATED
            return answer
        if path == "/api":
            return _json(discovery.api_versions())
        if path == "/openapi/v3":
            return _json(openapi.index(kinds))
        if path.startswith("/openapi/v3/"):
            found = openapi.document(kinds, path[len("/openapi/v3/"):])
            return _json(found) if found else _status(NotFound("the server could not find the requested resource"))
        if path == "/apis":
            return _json(discovery.api_groups(kinds))
        parts = [p for p in path.split("/") if p]
        if parts[:1] == ["api"] and len(parts) == 2:
            found = discovery.resource_list(kinds, "", parts[1])
            return _json(found) if found else _status(NotFound("the server could not find the requested resource"))
        if parts[:1] == ["apis"] and len(parts) in (2, 3):
            found = discovery.api_group(kinds, parts[1]) if len(parts) == 2 else \
                discovery.resource_list(kinds, parts[1], parts[2])
            return _json(found) if found else _status(NotFound("the server could not find the requested resource"))
        target = parse(path, kinds)
        if target is None:
            return _status(NotFound("the server could not find the requested resource"))
        return await self._resource(request, target)

    async def _body(self, request: web.Request) -> Any:
        """The request's body in its JSON form: JSON (or a JSON patch), or
        Kubernetes' protobuf encoding (what typed clients send)."""
        data = await request.read()
        if request.content_type == protobuf.CONTENT_TYPE:
            try:
                return protobuf.decode(data)
            except protobuf.NotReadable as e:
                raise UnsupportedMediaType(f"the body of the request could not be read in the protobuf "
                                           f"encoding: {e}; send it as application/json") from None
        if request.content_type not in ("application/json", "application/octet-stream", "", *PATCH_TYPES):
            raise UnsupportedMediaType.of(request.content_type)
        try:
            return json.loads(data or b"null")
        except ValueError as e:
            raise BadRequest(f"the body of the request was in an unknown format: {e}") from None

    async def _resource(self, request: web.Request, target: ResourcePath) -> web.StreamResponse:
        store, kind, ns, name = self.store, target.kind, target.namespace, target.name
        query = request.query
        if target.subresource == "scale" and name is not None and \
                (kind.group, kind.kind) in discovery.SCALABLE:
            return await self._scale(request, target)
        if target.subresource == "binding" and name is not None and (kind.group, kind.kind) == ("", "Pod") \
                and request.method == "POST":
            body = await self._body(request)
            now = datetime.datetime.now(datetime.UTC)
            return _json(await self._call(bind_pod, store, ns or "default", name, body, now), 201)
        if target.subresource not in (None, "status") or \
                (target.subresource == "status" and not kind.status_subresource):
            raise NotFound("the server could not find the requested resource")
        if target.subresource == "status" and request.method not in ("GET", "PUT", "PATCH"):
            raise MethodNotAllowed()
        part = WritePart.STATUS if target.subresource == "status" else WritePart.MAIN
        if name is None:
            if request.method == "GET":
                if query.get("watch") in ("1", "true"):
                    return await self._watch(request, target)
                listed = await self._call(
                    store.list, kind, ns, label_selector=query.get("labelSelector") or None,
                    field_selector=query.get("fieldSelector") or None, limit=_int(query.get("limit")),
                    continue_token=query.get("continue") or None,
                    resource_version=query.get("resourceVersion") or None)
                if tables.wants_table(request.headers.get("Accept", "")):
                    return _json(tables.table(kind, listed.items, listed.resource_version, listed.continue_token))
                return _json(listed.to_dict())
            if request.method == "POST":
                body = typed_body(await self._body(request), kind)
                created = await self._call(store.create, body, ns, dry_run="dryRun" in query, part=part)
                return _json(created, 201)
            raise MethodNotAllowed()
        if request.method == "GET":
            found = await self._call(store.get, kind, name, ns)
            if tables.wants_table(request.headers.get("Accept", "")):
                return _json(tables.table(kind, [found], found["metadata"].get("resourceVersion", "")))
            return _json(found)
        if request.method == "PUT":
            body = typed_body(await self._body(request), kind)
            body.setdefault("metadata", {}).setdefault("name", name)
            if body["metadata"]["name"] != name:
                raise BadRequest("the name of the object does not match the name on the URL")
            return _json(await self._call(store.update, body, ns, dry_run="dryRun" in query, part=part))
        if request.method == "PATCH":
            patch_type = PATCH_TYPES.get(request.content_type)
            if patch_type is None:
                raise UnsupportedMediaType(f"the body of the request was in an unknown format - accepted media "
                                           f"types include: {', '.join(PATCH_TYPES)}")
            body = await self._body(request)
            return _json(await self._call(store.patch, kind, name, body, ns, patch_type=patch_type,
                                          dry_run="dryRun" in query, part=part))
        if request.method == "DELETE":
            options = await self._body(request) if request.can_read_body else None
            options = options if isinstance(options, dict) else {}
            policy = query.get("propagationPolicy") or options.get("propagationPolicy")
            grace = query.get("gracePeriodSeconds")
            grace = _int(grace) if grace is not None else options.get("gracePeriodSeconds")
            return _json(await self._call(store.delete, kind, name, ns, propagation_policy=policy,
                                          grace_period_seconds=grace, graceful=True))
        raise MethodNotAllowed()

    async def _scale(self, request: web.Request, target: ResourcePath) -> web.Response:
        """The scale subresource (autoscaling/v1 Scale): kubectl scale reads and changes spec.replicas."""
        store, kind, ns, name = self.store, target.kind, target.namespace, target.name
        if request.method in ("PUT", "PATCH"):
            body = await self._body(request)
            spec = body.get("spec") if isinstance(body, dict) else None
            if request.method == "PATCH" and isinstance(spec, dict) and "replicas" not in spec:
                spec = None
            replicas = spec.get("replicas") if isinstance(spec, dict) else None
            if not isinstance(replicas, int) or isinstance(replicas, bool) or replicas < 0:
                raise BadRequest("the scale needs spec.replicas, a non-negative integer")
            obj = await self._call(store.patch, kind, name, {"spec": {"replicas": replicas}}, ns)
        elif request.method == "GET":
            obj = await self._call(store.get, kind, name, ns)
        else:
            raise MethodNotAllowed()
        meta = obj["metadata"]
        selector = (obj.get("spec") or {}).get("selector") or {}
        return _json({
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": {k: meta[k] for k in ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")
                         if k in meta},
            "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
            "status": {"replicas": (obj.get("status") or {}).get("replicas", 0),
                       "selector": ",".join(f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items())},
        })

    async def _watch(self, request: web.Request, target: ResourcePath) -> web.StreamResponse:
        query = request.query
        watch = await self._call(
            self.store.watch, target.kind, target.namespace,
            label_selector=query.get("labelSelector") or None, field_selector=query.get("fieldSelector") or None,
            resource_version=query.get("resourceVersion") or None,
            allow_bookmarks=query.get("allowWatchBookmarks") in ("1", "true"))
        reply = web.StreamResponse(status=200, headers={"Content-Type": "application/json",
                                                        "Transfer-Encoding": "chunked"})
        await reply.prepare(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(query.get("timeoutSeconds") or 1800)
        pump = _EventPump(watch, loop)
        try:
            while True:
                try:
                    item = await asyncio.wait_for(pump.get(), max(0.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    break
                if item is None:
                    break
                if isinstance(item, ObjectError):
                    await reply.write(json.dumps({"type": "ERROR", "object": item.status()}).encode() + b"\n")
                    break
                await reply.write(json.dumps({"type": item.type, "object": item.object},
                                             separators=(",", ":")).encode() + b"\n")
        finally:
            pump.stop()
            await self._call(watch.stop)
        await reply.write_eof()
        return reply


class _EventPump:
    """A watch's events, taken by a thread of its own and handed to the
    event loop; ``get()`` gives the next one, an ObjectError that ended the
    watch, or None at its end. At most ``_PUMP_AHEAD`` events wait for a
    slow reader: then the thread waits too."""

    _PUMP_AHEAD = 1000

    def __init__(self, watch, loop: asyncio.AbstractEventLoop) -> None:
        self._watch = watch
        self._loop = loop
        self._queue: asyncio.Queue = asyncio.Queue()
        self._room = threading.Semaphore(self._PUMP_AHEAD)
        self._stopped = threading.Event()
        threading.Thread(target=self._run, name="raftkv-apiserver-watch", daemon=True).start()

    async def get(self) -> Any:
        item = await self._queue.get()
        self._room.release()
        return item

    def stop(self) -> None:
        self._stopped.set()
        self._room.release()  # a pump waiting for room sees the stop

    def _hand_over(self, item: Any) -> bool:
        while not self._room.acquire(timeout=WATCH_POLL_SECONDS):
            if self._stopped.is_set():
                return False
        if self._stopped.is_set():
            return False
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the loop is closed
            return False
        return True

    def _run(self) -> None:
        try:
            while not self._stopped.is_set():
                event = self._watch.next(WATCH_POLL_SECONDS)
                if event is not None:
                    if not self._hand_over(event):
                        return
                elif self._watch.ended:
                    break
        except ObjectError as e:
            self._hand_over(e)
            return
        except Exception:  # noqa: BLE001 - a broken watch ends its stream, not the server
            log.exception("a watch's event pump failed")
        self._hand_over(None)
