"""``raftkv.open()``: the store in this process, no network, no disk."""

from __future__ import annotations

import contextlib
import logging
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from raftkv import __version__
from raftkv.client.api import KVClient, LeaseTTL, Status, Watch
from raftkv.errors import LeaseNotFound, NoSpace, StoreClosed
from raftkv.mvcc.auth import AuthResponse
from raftkv.mvcc.expiry import LeaseDeadlines
from raftkv.mvcc.permissions import Authorized, unwrapped
from raftkv.mvcc.requests import (
    AlarmAction,
    AlarmRequest,
    AlarmType,
    LeaseGrantRequest,
    LeaseRevokeRequest,
)
from raftkv.mvcc.store import KVStore, StoreLimits
from raftkv.mvcc.tokens import SimpleTokens
from raftkv.mvcc.watch import DEFAULT_MAX_PENDING_EVENTS, Watcher, WatchResponse

log = logging.getLogger(__name__)

MEMBER_ID = 1  # a single member with no cluster around it


class WatcherSource(Protocol):
    """What an EmbeddedWatch reads from: a store in this process."""

    @property
    def closed(self) -> bool: ...

    def poll_watchers(self, watchers: list[Watcher]) -> list[list[WatchResponse]]: ...

    def cancel_watcher(self, watcher: Watcher) -> None: ...


class EmbeddedWatch(Watch):
    def __init__(self, store: WatcherSource, watcher_factory: Callable[[Callable[[], None]], Watcher]) -> None:
        self._store = store
        self._ready = threading.Event()
        self._buffer: list[WatchResponse] = []
        self._watcher = watcher_factory(lambda: self._ready.set())
        self.id = self._watcher.id
        self._ended = False

    @property
    def canceled(self) -> bool:
        return self._watcher.canceled

    def next_response(self, timeout: float | None = None) -> WatchResponse | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._buffer:
                response = self._buffer.pop(0)
                if response.canceled:
                    self._ended = True
                return response
            if self._ended:
                return None
            self._ready.clear()
            (self._buffer,) = self._store.poll_watchers([self._watcher])
            if self._buffer:
                continue
            if self._watcher.canceled or self._store.closed:
                self._ended = True
                return None
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            self._ready.wait(remaining)

    def cancel(self) -> None:
        self._store.cancel_watcher(self._watcher)

    # For a server stream that serves many watches with one loop: it waits on
    # one event for all of them, then takes what each has without waiting.
    def listen(self, ready: threading.Event) -> None:
        """Signal ``ready`` (instead of this watch's own event) when something is pending."""
        self._ready = ready
        ready.set()

    @staticmethod
    def take_all(watches: list[EmbeddedWatch]) -> list[list[WatchResponse]]:
        """Every pending response of each watch (all of one store), without
        waiting and under one acquisition of the store's lock; nothing more
        from a watch after its cancellation."""
        if not watches:
            return []
        polled = iter(watches[0]._store.poll_watchers([w._watcher for w in watches if not w._ended]))
        taken = []
        for watch in watches:
            responses, watch._buffer = watch._buffer, []
            if not watch._ended:
                responses += next(polled)
            if any(response.canceled for response in responses):
                watch._ended = True
            taken.append(responses)
        return taken


class EmbeddedStore(KVClient):
    """A single-member store held in memory.

    Thread-safe. A background thread expires leases and sends progress
    notifications to watchers that asked for them.
    """

    def __init__(
        self,
        limits: StoreLimits | None = None,
        *,
        max_pending_events: int = DEFAULT_MAX_PENDING_EVENTS,
        progress_interval: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = KVStore(limits)
        self._store.watchers.max_pending_events = max_pending_events
        self._lock = threading.RLock()
        self._clock = clock
        self._deadlines = LeaseDeadlines()
        self._tokens = SimpleTokens()
        self._applied = 0
        self._closed = threading.Event()
        self._progress_interval = progress_interval
        self._wakeup = threading.Event()
        self._ticker = threading.Thread(target=self._tick_loop, name="raftkv-ticker", daemon=True)
        self._ticker.start()
        log.info("embedded store open")

    # ---- KVClient primitives ------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    @contextlib.contextmanager
    def local_store(self) -> Iterator[KVStore]:
        with self._lock:
            yield self._store

    def execute(self, request: Any) -> Any:
        with self._lock:
            self._check_open()
            entry, request = request, unwrapped(request)
            if self._store.over_quota(request):
                self._store.apply(AlarmRequest(AlarmAction.ACTIVATE, MEMBER_ID, AlarmType.NOSPACE))
                raise NoSpace()
            if isinstance(request, LeaseGrantRequest) and request.id == 0:
                request = LeaseGrantRequest(ttl=request.ttl, id=self._new_lease_id())
                entry = Authorized(request, entry.auth_revision) if isinstance(entry, Authorized) else request
            response = self._store.apply(entry)
            self._applied += 1
            now = self._clock()
            if isinstance(response, AuthResponse):
                self._tokens.record(request, response, now)
            elif isinstance(request, LeaseGrantRequest):
                self._deadlines.start(request.id, response.ttl, now)
                self._wakeup.set()
            elif isinstance(request, LeaseRevokeRequest):
                self._deadlines.remove(request.id)
            return response

    def authorize(self, user: str | None, request: object) -> int:
        with self._lock:
            return self._store.authorize(user, request)

    def user_for_token(self, token: str) -> str | None:
        with self._lock:
            return self._tokens.user(token, self._clock(), self._store.auth.revision)

    def issue_token(self, user: str, auth_revision: int) -> str:
        return self._tokens.issue(user, auth_revision, self._clock())

    def lease_keep_alive(self, lease_id: int) -> int:
        with self._lock:
            self._check_open()
            self._store.lessor.get(lease_id)  # raises LeaseNotFound
            ttl = self._deadlines.renew(lease_id, self._clock())
            if ttl is None:  # past its deadline, its revoke on the way
                raise LeaseNotFound()
            return ttl

    def lease_time_to_live(self, lease_id: int, keys: bool = False) -> LeaseTTL:
        with self._lock:
            self._check_open()
            try:
                lease = self._store.lessor.get(lease_id)
            except LeaseNotFound:
                return LeaseTTL(id=lease_id, ttl=-1, granted_ttl=0)
            return LeaseTTL(
                id=lease_id,
                ttl=self._deadlines.remaining(lease_id, self._clock()),
                granted_ttl=lease.ttl,
                keys=sorted(lease.keys) if keys else [],
            )

    def leases(self) -> list[int]:
        with self._lock:
            self._check_open()
            return self._deadlines.by_expiry([lease.id for lease in self._store.lessor.leases()])

    def open_watch(self, key: bytes, range_end: bytes, start_revision: int, prev_kv: bool,
                   no_put: bool, no_delete: bool, progress_notify: bool) -> Watch:
        def create(on_ready: Callable[[], None]) -> Watcher:
            return self._store.watchers.watch(
                key, range_end, start_revision, prev_kv=prev_kv, no_put=no_put,
                no_delete=no_delete, progress_notify=progress_notify, on_ready=on_ready,
            )

        with self._lock:
            self._check_open()
            return EmbeddedWatch(self, create)

    def request_progress(self) -> None:
        """Ask every watcher that is up to date to report the current revision."""
        with self._lock:
            self._store.watchers.request_progress()

    def status(self) -> Status:
        with self._lock:
            self._check_open()
            store = self._store
            return Status(
                version=__version__,
                member_id=MEMBER_ID,
                leader=MEMBER_ID,
                raft_term=1,
                raft_index=self._applied,
                raft_applied_index=self._applied,
                revision=store.revision,
                compact_revision=max(store.compact_revision, 0),
                key_count=store.key_count,
                lease_count=len(store.lessor),
                watcher_count=len(store.watchers),
                db_size=store.size,
                db_size_in_use=store.size_in_use,
            )

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        self._wakeup.set()
        with self._lock:
            self._store.watchers.cancel_all()
        self._ticker.join(timeout=5)
        log.info("embedded store closed")

    # ---- internals ------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise StoreClosed()

    def _new_lease_id(self) -> int:
        while True:
            lease_id = secrets.randbits(63)
            if lease_id and lease_id not in self._store.lessor:
                return lease_id

    def poll_watchers(self, watchers: list[Watcher]) -> list[list[WatchResponse]]:
        with self._lock:
            return [self._store.watchers.poll(w) for w in watchers]

    def cancel_watcher(self, watcher: Watcher) -> None:
        with self._lock:
            self._store.watchers.cancel(watcher)

    def expire_leases(self) -> list[int]:
        """Revoke every lease whose deadline has passed; returns their ids."""
        with self._lock:
            if self._closed.is_set():
                return []
            expired = self._deadlines.expired(self._clock())
            revoked = []
            for lease_id in expired:
                if lease_id in self._store.lessor:
                    self._store.lease_revoke(LeaseRevokeRequest(lease_id))
                    self._applied += 1
                    revoked.append(lease_id)
                    log.info("lease expired lease_id=%x", lease_id)
                self._deadlines.remove(lease_id)
            return revoked

    def _tick_loop(self) -> None:
        next_progress = self._clock() + self._progress_interval
        while not self._closed.is_set():
            self.expire_leases()
            now = self._clock()
            if now >= next_progress:
                with self._lock:
                    self._store.watchers.send_progress_notifications()
                next_progress = now + self._progress_interval
            with self._lock:
                deadline = self._deadlines.next_deadline()
            wait = min(next_progress, deadline if deadline is not None else next_progress) - now
            self._wakeup.wait(min(max(wait, 0.01), 1.0))
            self._wakeup.clear()
