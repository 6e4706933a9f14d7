"""Watching objects: Kubernetes' watch semantics on a raftkv watch.

Each change to a key becomes at most one event for a watcher with
selectors, judged on the object before and after the change:

* matches after, not before (or is new): ADDED
* matches before and after: MODIFIED
* matches before, not after (or is gone): DELETED, carrying the object's
  last matching state with the resourceVersion of the change

so an object relabelled out of a selector leaves it as DELETED and one
relabelled into it arrives as ADDED. With ``allow_bookmarks``, the store's
progress notifications become BOOKMARK events carrying only a
resourceVersion the watcher has seen everything up to.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from raftkv.mvcc.types import EventType
from raftkv.objects import keys
from raftkv.objects.errors import Expired
from raftkv.objects.fields import FieldSelector
from raftkv.objects.kinds import Kind
from raftkv.objects.selectors import Selector

if TYPE_CHECKING:
    from raftkv.objects.store import ObjectStore

log = logging.getLogger(__name__)

ADDED = "ADDED"
MODIFIED = "MODIFIED"
DELETED = "DELETED"
BOOKMARK = "BOOKMARK"


@dataclass
class WatchEvent:
    type: str  # ADDED, MODIFIED, DELETED or BOOKMARK
    object: dict[str, Any]

    @property
    def resource_version(self) -> str:
        return self.object.get("metadata", {}).get("resourceVersion", "")

    @property
    def name(self) -> str:
        return self.object.get("metadata", {}).get("name", "")


class ObjectWatch:
    """Iterate for events (until ``stop()``), or call ``next(timeout)``.

    Raises Expired (410) when the resourceVersion it starts from, or one it
    fell behind to, has been compacted away: list again and watch from the
    list's resourceVersion.
    """

    def __init__(self, store: ObjectStore, kind: Kind, namespace: str | None, labels: Selector,
                 fields: FieldSelector, resource_version: str | int | None,
                 allow_bookmarks: bool = False) -> None:
        from raftkv.objects.store import parse_resource_version

        self.kind = kind
        self._store = store
        self._labels = labels
        self._fields = fields
        self._bookmarks = allow_bookmarks
        self._queue: deque[WatchEvent] = deque()
        self._ended = False
        rv = parse_resource_version(resource_version)
        if not rv:
            initial = store.list(kind, namespace, label_selector=labels, field_selector=fields)
            self._queue.extend(WatchEvent(ADDED, obj) for obj in initial.items)
            rv = int(initial.resource_version)
        else:
            compacted = store.kv.status().compact_revision
            if rv + 1 < compacted:
                raise Expired(f"too old resource version: {rv} ({compacted})")
        self.resource_version = rv
        prefix = store.keys.list_prefix(kind, namespace)
        self._watch = store.kv.watch(prefix, keys.range_end(prefix), start_revision=rv + 1,
                                     prev_kv=True, progress_notify=allow_bookmarks)
        log.debug("watch started kind=%s prefix=%s from=%d", kind.kind, prefix.decode(), rv + 1)

    # ---- reading ------------------------------------------------------------------

    def next(self, timeout: float | None = None) -> WatchEvent | None:
        """The next event; None when ``timeout`` passes first or the watch ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._queue:
                return self._queue.popleft()
            if self._ended:
                return None
            remaining = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            response = self._watch.next_response(timeout=remaining)
            if response is None:
                if timeout is None or self._watch.canceled:
                    self._ended = True
                return None
            if response.canceled:
                self._ended = True
                if response.compact_revision:
                    raise Expired(f"too old resource version: {self.resource_version} "
                                  f"({response.compact_revision})")
                return None
            if not response.events:
                if self._bookmarks:
                    self._queue.append(WatchEvent(BOOKMARK, {
                        "apiVersion": self.kind.api_version, "kind": self.kind.kind,
                        "metadata": {"resourceVersion": str(response.revision)},
                    }))
                self.resource_version = max(self.resource_version, response.revision)
                continue
            for event in response.events:
                converted = self._convert(event)
                if converted is not None:
                    self._queue.append(converted)
            self.resource_version = max(self.resource_version, response.revision)

    @property
    def ended(self) -> bool:
        """No more events will come (the watch was stopped or cancelled)."""
        return self._ended and not self._queue

    def __iter__(self) -> Iterator[WatchEvent]:
        while True:
            event = self.next()
            if event is None:
                return
            yield event

    def stop(self) -> None:
        self._ended = True
        self._watch.cancel()

    def __enter__(self) -> ObjectWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- conversion ------------------------------------------------------------------

    def _matches(self, obj: dict[str, Any] | None) -> bool:
        return obj is not None and self._labels.matches(obj.get("metadata", {}).get("labels")) \
            and self._fields.matches(obj)

    def _convert(self, event: Any) -> WatchEvent | None:
        store, kind = self._store, self.kind
        new = store.decode_stored(kind, event.kv) if event.type == EventType.PUT else None
        prev = event.prev_kv
        old = store.decode_stored(kind, prev) if prev is not None and not prev.is_tombstone else None
        new_ok, old_ok = self._matches(new), self._matches(old)
        if new_ok and old_ok:
            return WatchEvent(MODIFIED, new)  # type: ignore[arg-type]
        if new_ok:
            return WatchEvent(ADDED, new)  # type: ignore[arg-type]
        if old_ok:
            assert old is not None
            old["metadata"]["resourceVersion"] = str(event.kv.mod_revision)
            return WatchEvent(DELETED, old)
        if new is None and old is None and self._labels.empty and self._fields.empty:
            namespace, name = self._store.keys.split_key(kind, event.kv.key)
            meta = {"name": name, "resourceVersion": str(event.kv.mod_revision)}
            if namespace:
                meta["namespace"] = namespace
            return WatchEvent(DELETED, {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": meta})
        return None
