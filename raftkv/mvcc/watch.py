"""Watchers: who wants to hear about which keys, and what they have not heard yet.

etcd's guarantees hold per watcher: events arrive in revision order, each
once, the events of one revision together, with no gap. A *synced* watcher
is fed as writes happen. One whose buffer is full stops being fed — the
writer never waits — and becomes *unsynced*: it remembers the first
revision it missed and catches up from the store's history when its reader
drains the buffer. If compaction passes that revision first, the watcher is
cancelled with the compaction revision.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from raftkv.errors import Compacted
from raftkv.mvcc.index import ALL_KEYS_FROM
from raftkv.mvcc.types import Event, EventType, KeyValue
from raftkv.mvcc.watcher_index import WatcherIndex

if TYPE_CHECKING:
    from raftkv.mvcc.store import KVStore

DEFAULT_MAX_PENDING_EVENTS = 4096


@dataclass
class WatchResponse:
    """A batch for one watcher: the events of one revision, a progress
    notification (no events), or the watcher's cancellation."""

    watch_id: int
    revision: int
    events: list[Event] = field(default_factory=list)
    compact_revision: int = 0
    canceled: bool = False
    cancel_reason: str = ""

    @property
    def is_progress_notify(self) -> bool:
        return not self.events and not self.canceled


class Watcher:
    def __init__(
        self,
        watch_id: int,
        key: bytes,
        range_end: bytes,
        start_revision: int,
        prev_kv: bool,
        no_put: bool,
        no_delete: bool,
        progress_notify: bool,
        on_ready: Callable[[], None] | None,
    ) -> None:
        self.id = watch_id
        self.key = key
        self.range_end = range_end
        self.start_revision = start_revision
        self.prev_kv = prev_kv
        self.no_put = no_put
        self.no_delete = no_delete
        self.progress_notify = progress_notify
        self.on_ready = on_ready
        self.pending: deque[WatchResponse] = deque()
        self.pending_events = 0
        self.synced = True
        self.canceled = False
        self.next_revision = 0  # meaningful while unsynced
        self.fell_behind = False  # it was promised revisions from next_revision on
        self.heard_since_progress = False

    def matches(self, key: bytes) -> bool:
        if not self.range_end:
            return key == self.key
        if self.range_end == ALL_KEYS_FROM:
            return key >= self.key
        return self.key <= key < self.range_end

    def wants(self, kv: KeyValue) -> bool:
        return not (self.no_delete if kv.is_tombstone else self.no_put)

    def wake(self) -> None:
        if self.on_ready is not None:
            self.on_ready()


class WatchHub:
    def __init__(self, store: KVStore, max_pending_events: int = DEFAULT_MAX_PENDING_EVENTS) -> None:
        self._store = store
        self.max_pending_events = max_pending_events
        self._ids = itertools.count(1)
        self._synced_watchers: WatcherIndex[Watcher] = WatcherIndex()
        self._unsynced: set[Watcher] = set()

    def __len__(self) -> int:
        return len(self._synced_watchers) + len(self._unsynced)

    # ---- watcher life cycle -------------------------------------------------

    def watch(
        self,
        key: bytes,
        range_end: bytes = b"",
        start_revision: int = 0,
        *,
        prev_kv: bool = False,
        no_put: bool = False,
        no_delete: bool = False,
        progress_notify: bool = False,
        on_ready: Callable[[], None] | None = None,
    ) -> Watcher:
        watcher = Watcher(
            next(self._ids), key, range_end, start_revision,
            prev_kv, no_put, no_delete, progress_notify, on_ready,
        )
        if 0 < start_revision <= self._store.revision:
            watcher.synced = False
            watcher.next_revision = start_revision
            self._unsynced.add(watcher)
            if start_revision < self._store.compact_revision:
                self._cancel_compacted(watcher)
        elif start_revision < 0 and start_revision < self._store.compact_revision:
            # etcd: below the compaction revision (-1 in a store never compacted) is compacted
            self._cancel_compacted(watcher)
        else:
            self._add_synced(watcher)
        return watcher

    def cancel(self, watcher: Watcher) -> None:
        self._forget(watcher)
        watcher.canceled = True
        watcher.wake()

    def cancel_all(self) -> None:
        """End every watcher (the store is closing or being replaced)."""
        for watcher in self._synced() + list(self._unsynced):
            self.cancel(watcher)

    def poll(self, watcher: Watcher) -> list[WatchResponse]:
        """Take everything the watcher has pending, catching up from history
        first when it fell behind and has nothing buffered."""
        if not watcher.pending and not watcher.synced and not watcher.canceled:
            self._catch_up(watcher)
        batches = list(watcher.pending)
        watcher.pending.clear()
        watcher.pending_events = 0
        if batches and not watcher.synced and not watcher.canceled:
            # still behind: no write will wake its reader (writes feed synced
            # watchers only), so ask for the next poll, which catches up further
            watcher.wake()
        return batches

    # ---- feeding ------------------------------------------------------------

    def notify(self, revision: int, changes: list[KeyValue], prevs: list[KeyValue | None]) -> None:
        """Called by the store once per committed revision."""
        if not self._synced_watchers:
            return
        batches: dict[Watcher, list[Event]] = {}
        for kv, prev in zip(changes, prevs):
            # one Event object for every watcher that sees the change alike, so
            # that whoever encodes it for many watchers can do so once
            shared = (_event(kv, None), _event(kv, prev))
            for watcher in self._synced_watchers.matching(kv.key):
                if revision < watcher.start_revision or not watcher.wants(kv):
                    continue
                batches.setdefault(watcher, []).append(shared[watcher.prev_kv])
        for watcher, events in batches.items():
            if watcher.pending and watcher.pending_events + len(events) > self.max_pending_events:
                self._fall_behind(watcher, revision)
            else:
                self._queue(watcher, WatchResponse(watcher.id, revision, events))

    def request_progress(self) -> None:
        """Tell every synced watcher the current revision (etcd's progress request)."""
        for watcher in self._synced():
            self._queue(watcher, WatchResponse(watcher.id, self._store.revision))

    def send_progress_notifications(self) -> None:
        """The periodic notification to idle synced watchers that asked for it."""
        for watcher in self._synced():
            if watcher.progress_notify and not watcher.heard_since_progress and not watcher.pending:
                self._queue(watcher, WatchResponse(watcher.id, self._store.revision))
            watcher.heard_since_progress = False

    def rewind(self, next_revision: int) -> None:
        """After the store's state was replaced: every synced watcher catches
        up from ``next_revision`` (or is cancelled if that is compacted)."""
        for watcher in self._synced():
            # not before its start: a watch created for later revisions gets none earlier
            self._fall_behind(watcher, max(next_revision, watcher.start_revision))
            watcher.wake()

    # ---- internals ----------------------------------------------------------

    def _synced(self) -> list[Watcher]:
        return list(self._synced_watchers)

    def _queue(self, watcher: Watcher, response: WatchResponse) -> None:
        watcher.pending.append(response)
        watcher.pending_events += len(response.events)
        if response.events:
            watcher.heard_since_progress = True
        watcher.wake()

    def _add_synced(self, watcher: Watcher) -> None:
        watcher.synced = True
        self._unsynced.discard(watcher)
        self._synced_watchers.add(watcher)

    def _forget(self, watcher: Watcher) -> None:
        self._unsynced.discard(watcher)
        self._synced_watchers.discard(watcher)

    def _fall_behind(self, watcher: Watcher, revision: int) -> None:
        self._forget(watcher)
        watcher.synced = False
        watcher.fell_behind = True
        watcher.next_revision = revision
        self._unsynced.add(watcher)

    def _cancel_compacted(self, watcher: Watcher) -> None:
        self._forget(watcher)
        watcher.canceled = True
        self._queue(
            watcher,
            WatchResponse(
                watcher.id,
                self._store.revision,
                compact_revision=self._store.compact_revision,
                canceled=True,
                cancel_reason=Compacted.message,
            ),
        )

    def _catch_up(self, watcher: Watcher) -> None:
        store = self._store
        if watcher.next_revision < store.compact_revision:
            self._cancel_compacted(watcher)
            return
        for revision, changes in store.history_since(watcher.next_revision, watcher.fell_behind):
            events = [
                _event(kv, store.value_at(kv.key, revision - 1) if watcher.prev_kv else None)
                for kv in changes
                if watcher.matches(kv.key) and watcher.wants(kv)
            ]
            if events:
                if watcher.pending and watcher.pending_events + len(events) > self.max_pending_events:
                    watcher.next_revision = revision
                    return
                self._queue(watcher, WatchResponse(watcher.id, revision, events))
            watcher.next_revision = revision + 1
        self._add_synced(watcher)


def _event(kv: KeyValue, prev: KeyValue | None) -> Event:
    return Event(EventType.DELETE if kv.is_tombstone else EventType.PUT, kv, prev)
