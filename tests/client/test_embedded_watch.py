"""Watch through ``raftkv.open()``: the iterator and callback APIs, with
concurrent writer threads and watchers of different speeds.

Synchronisation is by events and counting, never by sleeping; the one
``time.sleep`` makes the slow watcher slow. Every thread is joined.
"""

from __future__ import annotations

import threading
import time

import pytest

import raftkv
from raftkv import errors, ops
from raftkv.mvcc import EventType, KeyValue, WatchResponse

pytestmark = pytest.mark.timeout(60)

PUT, DELETE = EventType.PUT, EventType.DELETE
COMPACTED_REASON = "etcdserver: mvcc: required revision has been compacted"
JOIN = 30  # seconds; a thread still alive after that is a failure


def start(target, *args, name=None) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread


def join_all(*threads: threading.Thread) -> None:
    for thread in threads:
        thread.join(JOIN)
    alive = [t.name for t in threads if t.is_alive()]
    assert not alive, f"threads did not finish: {alive}"


def callback_thread(watch) -> threading.Thread:
    """The thread raftkv starts for ``kv.watch(..., callback=...)``."""
    (thread,) = [t for t in threading.enumerate() if t.name == f"raftkv-watch-{watch.id}"]
    return thread


def brief(response: WatchResponse):
    return (response.revision, [(e.type, e.kv.key, e.kv.value) for e in response.events])


# ---- many writers, several watchers ----------------------------------------------------------

WRITERS, WRITES = 4, 300
END = b"~end"


class Ledger:
    """What the writers did: revision -> [(type, key, value, prev value)]."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.by_revision: dict[int, list] = {}

    def record(self, revision: int, events: list) -> None:
        with self.lock:
            assert revision not in self.by_revision, f"two writes got revision {revision}"
            self.by_revision[revision] = events

    def expected(self, prefix: bytes, after: int, *, no_delete: bool = False):
        """[(revision, [(type, key, value)])] a watcher on ``prefix`` should see."""
        out = []
        for rev in sorted(self.by_revision):
            if rev <= after:
                continue
            events = [(t, k, v) for t, k, v, _ in self.by_revision[rev]
                      if k.startswith(prefix) and not (no_delete and t == DELETE)]
            if events:
                out.append((rev, events))
        return out


def writer(kv, n: int, ledger: Ledger, reached_100: threading.Event) -> None:
    live: dict[bytes, bytes] = {}       # this writer's keys (no one else writes them)
    for i in range(WRITES):
        key = b"w%d/%d" % (n, i % 5)
        value = b"%d:%d" % (n, i)
        if i % 10 == 9:                 # two keys in one revision
            extra = b"w%d/x" % n
            r = kv.txn().then(ops.put(key, value), ops.put(extra, value)).commit()
            ledger.record(r.revision, [(PUT, key, value, live.get(key)),
                                       (PUT, extra, value, live.get(extra))])
            live[key] = live[extra] = value
        elif i % 7 == 6 and key in live:
            r = kv.delete(key)
            assert r.deleted == 1
            ledger.record(r.revision, [(DELETE, key, b"", live.pop(key))])
        else:
            r = kv.put(key, value)
            ledger.record(r.revision, [(PUT, key, value, live.get(key))])
            live[key] = value
        if n == 0 and i == 100:
            reached_100.set()


def consume(watch, into: list, started: threading.Event | None = None,
            gate: threading.Event | None = None, slow: float = 0.0) -> None:
    """Collect responses until one carries an END key (or the watch ends).
    With ``gate``: take one response, then wait for the gate to open."""
    for response in watch:
        into.append(response)
        if started is not None:
            started.set()
        if gate is not None:
            assert gate.wait(JOIN)
            gate = None
        if slow:
            time.sleep(slow)            # a slow reader, not synchronisation
        if any(e.kv.key.endswith(END) for e in response.events):
            return


def test_every_watcher_sees_every_revision_once_in_order_and_writers_never_wait():
    kv = raftkv.open(max_pending_events=16)
    try:
        base = kv.status().revision
        ledger = Ledger()
        reached_100 = threading.Event()

        everything, slow, w1, replayed, called = [], [], [], [], []
        callback_done = threading.Event()

        def on_response(response):
            called.append(response)
            if any(e.kv.key.endswith(END) for e in response.events):
                callback_done.set()

        fast_watch = kv.watch("", prefix=True)
        slow_watch = kv.watch("w", prefix=True)
        w1_watch = kv.watch("w1/", prefix=True, prev_kv=True)
        cb_watch = kv.watch("w2/", prefix=True, no_delete=True, callback=on_response)
        slow_started, gate = threading.Event(), threading.Event()

        consumers = [
            start(consume, fast_watch, everything, name="fast"),
            start(consume, slow_watch, slow, slow_started, gate, 0.0005, name="slow"),
            start(consume, w1_watch, w1, name="w1"),
        ]
        writers = [start(writer, kv, n, ledger, reached_100, name=f"writer-{n}")
                   for n in range(WRITERS)]

        # a watcher that starts in the past while the writers are busy
        assert reached_100.wait(JOIN)
        replay_watch = kv.watch("w3/", prefix=True, start_revision=base + 1)
        consumers.append(start(consume, replay_watch, replayed, name="replay"))

        join_all(*writers)
        # Every write finished while the slow watcher was held after its first
        # batch: writers do not wait for readers. (Counted, not timed.)
        assert slow_started.wait(JOIN)
        assert len(slow) == 1
        assert not slow_watch._watcher.synced    # white-box: it did fall behind

        end = kv.txn().then(*(ops.put(b"w%d/%s" % (n, END), b"end") for n in range(4))).commit()
        ledger.record(end.revision, [(PUT, b"w%d/%s" % (n, END), b"end", None) for n in range(4)])
        gate.set()
        join_all(*consumers)
        assert callback_done.wait(JOIN)

        # every write made exactly one revision, with no hole
        assert sorted(ledger.by_revision) == list(range(base + 1, end.revision + 1))
        assert len(ledger.by_revision) == WRITERS * WRITES + 1

        for name, got, prefix, kwargs in [
            ("fast", everything, b"", {}),
            ("slow", slow, b"w", {}),
            ("w1", w1, b"w1/", {}),
            ("replay", replayed, b"w3/", {}),
            ("callback", called, b"w2/", {"no_delete": True}),
        ]:
            assert not any(r.canceled for r in got), name
            assert [brief(r) for r in got] == ledger.expected(prefix, base, **kwargs), name

        # prev_kv: the key's value before this revision (None when created)
        for response in w1:
            for event, (_, _, _, prev) in zip(
                response.events,
                [e for e in ledger.by_revision[response.revision] if e[1].startswith(b"w1/")],
            ):
                assert (event.prev_kv.value if event.prev_kv else None) == prev

        cb_watch.cancel()
        join_all(callback_thread(cb_watch))
    finally:
        kv.close()


# ---- compaction, cancel, close ----------------------------------------------------------------


def test_watcher_behind_compaction_is_cancelled_with_the_reason():
    kv = raftkv.open(max_pending_events=4)
    try:
        got: list[WatchResponse] = []
        started, gate = threading.Event(), threading.Event()
        watch = kv.watch("k", prefix=True)
        consumer = start(consume, watch, got, started, gate, name="behind")

        first = kv.put("k0", "0").revision
        assert started.wait(JOIN)
        writes = [kv.put(f"k{i % 3}", str(i)).revision for i in range(1, 200)]
        compacted = writes[-1] - 10
        kv.compact(compacted)
        gate.set()
        join_all(consumer)                  # the iterator ends after the cancel

        *batches, last = got
        assert last.canceled and not last.events
        assert last.compact_revision == compacted
        assert last.cancel_reason == COMPACTED_REASON == errors.Compacted.message
        # what came before is a gap-free prefix of the writes
        assert [r.revision for r in batches] == [first, *writes][: len(batches)]
        assert len(batches) < 200
        assert watch.canceled
        assert watch.next_response(timeout=0) is None
    finally:
        kv.close()


def test_watch_from_a_compacted_revision_is_cancelled():
    kv = raftkv.open()
    try:
        for i in range(5):
            kv.put("k", str(i))             # 2..6
        kv.compact(5)
        with kv.watch("k", start_revision=3) as watch:
            responses = list(watch)
        assert len(responses) == 1
        assert responses[0].canceled and responses[0].compact_revision == 5
        assert responses[0].cancel_reason == COMPACTED_REASON
    finally:
        kv.close()


def test_cancel_ends_a_blocked_iterator():
    kv = raftkv.open()
    try:
        watch = kv.watch("k")
        got, first = [], threading.Event()

        def read():
            for response in watch:
                got.append(response)
                first.set()

        reader = start(read, name="reader")
        rev = kv.put("k", "1").revision
        assert first.wait(JOIN)
        watch.cancel()                      # the reader is (or soon will be) waiting
        join_all(reader)
        kv.put("k", "2")
        assert [r.revision for r in got] == [rev]
        assert watch.canceled
        assert kv.status().watcher_count == 0
    finally:
        kv.close()


def test_close_ends_iterators_and_callbacks():
    kv = raftkv.open()
    iterated, evented, called = [], [], []
    first_events = threading.Event()
    watches = [kv.watch("a"), kv.watch("a")]

    def iterate():
        for response in watches[0]:
            iterated.append(response)

    def events():
        for event in watches[1].events():
            evented.append(event)
            first_events.set()

    threads = [start(iterate, name="iterate"), start(events, name="events")]
    cb_watch = kv.watch("a", callback=called.append)
    cb_thread = callback_thread(cb_watch)
    kv.put("a", "1")
    assert first_events.wait(JOIN)
    kv.close()
    join_all(*threads, cb_thread)
    assert [(e.type, e.kv.value) for e in evented] == [(PUT, b"1")]
    assert all(len(r.events) == 1 for r in iterated + called)
    assert len(iterated) <= 1 and len(called) <= 1


# ---- the watch API ----------------------------------------------------------------------------


def test_watch_replay_prev_kv_and_filters():
    kv = raftkv.open()
    try:
        kv.put("k", "1")                    # 2
        kv.put("k", "2")                    # 3
        kv.delete("k")                      # 4
        with kv.watch("k", start_revision=2, prev_kv=True) as watch:
            got = [watch.next_response(timeout=JOIN) for _ in range(3)]
        assert [brief(r) for r in got] == [
            (2, [(PUT, b"k", b"1")]), (3, [(PUT, b"k", b"2")]), (4, [(DELETE, b"k", b"")]),
        ]
        assert [r.events[0].prev_kv for r in got] == [
            None, KeyValue(b"k", 2, 2, 1, b"1"), KeyValue(b"k", 2, 3, 2, b"2"),
        ]
        with kv.watch("k", start_revision=2, no_put=True) as watch:
            assert brief(watch.next_response(timeout=JOIN)) == (4, [(DELETE, b"k", b"")])
        with kv.watch("k", start_revision=2, no_delete=True) as watch:
            puts = [watch.next_response(timeout=JOIN) for _ in range(2)]
            assert [brief(r) for r in puts] == [(2, [(PUT, b"k", b"1")]), (3, [(PUT, b"k", b"2")])]
            assert watch.next_response(timeout=0) is None
        assert kv.status().watcher_count == 0   # leaving the with-block cancelled them
    finally:
        kv.close()


def test_watch_future_start_and_from_key():
    kv = raftkv.open()
    try:
        with kv.watch("b", from_key=True, start_revision=3) as watch:
            kv.put("c", "early")            # 2: before the start revision
            kv.put("a", "outside")          # 3: outside the range
            kv.put("b", "in")               # 4
            assert brief(watch.next_response(timeout=JOIN)) == (4, [(PUT, b"b", b"in")])
    finally:
        kv.close()


def test_request_progress_and_periodic_progress():
    kv = raftkv.open(progress_interval=0.05)
    try:
        kv.put("x", "1")
        notified = kv.watch("quiet", progress_notify=True)
        plain = kv.watch("quiet")
        for _ in range(3):                  # three rounds of the periodic notification
            response = notified.next_response(timeout=JOIN)
            assert response is not None and response.is_progress_notify
            assert response.revision == kv.status().revision == 2
        assert plain.next_response(timeout=0) is None   # it did not ask for them

        kv.request_progress()               # on demand: every synced watcher hears
        response = plain.next_response(timeout=JOIN)
        assert response.is_progress_notify and response.revision == 2
        notified.cancel()
        plain.cancel()
    finally:
        kv.close()
