"""Watchers on the state machine (KVStore.watchers, a WatchHub).

etcd's guarantees, per watcher: events in revision order, each exactly once,
all events of one revision in one response, no gap; a watcher whose history
has been compacted away is cancelled (with the compaction revision) rather
than silently skipping. A slow reader never blocks a writer.

The property test at the end drives random writes, watchers, polls,
progress requests and compactions, and compares what each watcher received
with what the model in model.py says it should have received.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from raftkv.errors import Compacted, RaftKVError
from raftkv.mvcc import (
    CompactionRequest,
    Compare,
    CompareResult,
    CompareTarget,
    DeleteRangeRequest,
    EventType,
    KeyValue,
    KVStore,
    LeaseGrantRequest,
    PutRequest,
    TxnRequest,
    WatchResponse,
)

from model import FROM_KEY, Model

PUT, DELETE = EventType.PUT, EventType.DELETE
COMPACTED_REASON = "etcdserver: mvcc: required revision has been compacted"


# ---- helpers --------------------------------------------------------------------------


def put(s: KVStore, key: bytes, value: bytes = b"v") -> int:
    return s.put(PutRequest(key, value)).revision


def delete(s: KVStore, key: bytes, range_end: bytes = b"") -> int:
    return s.delete_range(DeleteRangeRequest(key, range_end)).revision


def drain(s: KVStore, watcher, max_polls: int = 10_000) -> list[WatchResponse]:
    """Poll until a poll brings nothing (the watcher is then caught up or ended)."""
    out: list[WatchResponse] = []
    for _ in range(max_polls):
        batch = s.watchers.poll(watcher)
        if not batch:
            return out
        out.extend(batch)
    raise AssertionError("watcher never settled")


def brief(responses) -> list[tuple[int, list[tuple[EventType, bytes, bytes]]]]:
    """(revision, [(type, key, value)]) per response: easy to read in asserts."""
    return [(r.revision, [(e.type, e.kv.key, e.kv.value) for e in r.events]) for r in responses]


# ---- start revisions -------------------------------------------------------------------


def test_replays_history_from_a_past_revision_then_follows_live_writes():
    s = KVStore()
    put(s, b"a", b"1")          # 2
    put(s, b"b", b"1")          # 3
    put(s, b"a", b"2")          # 4
    delete(s, b"a")             # 5
    put(s, b"c", b"1")          # 6 (outside the watched range)
    w = s.watchers.watch(b"a", b"c", start_revision=3)

    got = drain(s, w)
    assert brief(got) == [
        (3, [(PUT, b"b", b"1")]),
        (4, [(PUT, b"a", b"2")]),
        (5, [(DELETE, b"a", b"")]),
    ]
    assert got[1].events[0].kv == KeyValue(b"a", 2, 4, 2, b"2")
    assert got[2].events[0].kv == KeyValue(b"a", 0, 5, 0)  # tombstone: key and revision only
    assert all(r.watch_id == w.id for r in got)

    put(s, b"b", b"2")          # 7: live, after the replay
    assert brief(drain(s, w)) == [(7, [(PUT, b"b", b"2")])]


def test_start_revision_zero_means_from_the_next_revision():
    s = KVStore()
    put(s, b"k", b"old")
    w = s.watchers.watch(b"k")
    assert drain(s, w) == []
    rev = put(s, b"k", b"new")
    assert brief(drain(s, w)) == [(rev, [(PUT, b"k", b"new")])]


def test_start_revision_equal_to_the_current_revision_replays_it():
    s = KVStore()
    rev = put(s, b"k", b"now")
    w = s.watchers.watch(b"k", start_revision=rev)
    assert brief(drain(s, w)) == [(rev, [(PUT, b"k", b"now")])]


def test_future_start_revision_only_delivers_from_that_revision():
    s = KVStore()                       # revision 1
    w = s.watchers.watch(b"k", start_revision=4)
    put(s, b"k", b"2")
    put(s, b"k", b"3")
    assert drain(s, w) == []
    put(s, b"k", b"4")
    put(s, b"k", b"5")
    assert brief(drain(s, w)) == [(4, [(PUT, b"k", b"4")]), (5, [(PUT, b"k", b"5")])]


# ---- prev_kv and filters ----------------------------------------------------------------


def _prev_kv_history(s: KVStore) -> None:
    put(s, b"k", b"1")          # 2 create
    put(s, b"k", b"2")          # 3
    delete(s, b"k")             # 4
    put(s, b"k", b"3")          # 5 create again


PREV_KV_EXPECTED = [
    (2, PUT, None),
    (3, PUT, KeyValue(b"k", 2, 2, 1, b"1")),
    (4, DELETE, KeyValue(b"k", 2, 3, 2, b"2")),
    (5, PUT, None),
]


def _prevs(responses):
    return [(r.revision, e.type, e.prev_kv) for r in responses for e in r.events]


def test_prev_kv_for_live_watchers():
    s = KVStore()
    with_prev = s.watchers.watch(b"k", prev_kv=True)
    without = s.watchers.watch(b"k")
    _prev_kv_history(s)
    assert _prevs(drain(s, with_prev)) == PREV_KV_EXPECTED
    assert [p for _, _, p in _prevs(drain(s, without))] == [None] * 4


def test_prev_kv_for_replayed_history():
    s = KVStore()
    _prev_kv_history(s)
    with_prev = s.watchers.watch(b"k", start_revision=2, prev_kv=True)
    without = s.watchers.watch(b"k", start_revision=2)
    assert _prevs(drain(s, with_prev)) == PREV_KV_EXPECTED
    assert [p for _, _, p in _prevs(drain(s, without))] == [None] * 4


@pytest.mark.parametrize("replay", [False, True], ids=["live", "replay"])
def test_no_put_and_no_delete_filters(replay):
    s = KVStore()
    start = 2 if replay else 0
    if not replay:
        no_put = s.watchers.watch(b"k", FROM_KEY, no_put=True)
        no_delete = s.watchers.watch(b"k", FROM_KEY, no_delete=True)
    put(s, b"k1", b"a")                                   # 2
    s.txn(TxnRequest(success=[PutRequest(b"k2", b"b"), DeleteRangeRequest(b"k1")]))  # 3
    delete(s, b"k2")                                      # 4
    if replay:
        no_put = s.watchers.watch(b"k", FROM_KEY, start, no_put=True)
        no_delete = s.watchers.watch(b"k", FROM_KEY, start, no_delete=True)
    # a revision whose every event is filtered out sends no response at all
    assert brief(drain(s, no_put)) == [(3, [(DELETE, b"k1", b"")]), (4, [(DELETE, b"k2", b"")])]
    assert brief(drain(s, no_delete)) == [(2, [(PUT, b"k1", b"a")]), (3, [(PUT, b"k2", b"b")])]


# ---- one response per revision ------------------------------------------------------------


@pytest.mark.parametrize("replay", [False, True], ids=["live", "replay"])
def test_all_events_of_one_revision_come_in_one_response(replay):
    s = KVStore()
    put(s, b"c", b"0")                                    # 2
    if not replay:
        ranged = s.watchers.watch(b"a", b"d")
        single = s.watchers.watch(b"b")
    rev = s.txn(TxnRequest(success=[
        PutRequest(b"b", b"1"), DeleteRangeRequest(b"c"), PutRequest(b"a", b"1"),
        PutRequest(b"z", b"1"),                           # outside both watchers
    ])).revision                                          # 3
    if replay:
        ranged = s.watchers.watch(b"a", b"d", start_revision=rev)
        single = s.watchers.watch(b"b", start_revision=rev)
    assert brief(drain(s, ranged)) == [
        (rev, [(PUT, b"b", b"1"), (DELETE, b"c", b""), (PUT, b"a", b"1")]),
    ]
    assert brief(drain(s, single)) == [(rev, [(PUT, b"b", b"1")])]


# ---- slow watchers ------------------------------------------------------------------------


def test_slow_watcher_never_blocks_writes_falls_behind_and_catches_up_without_gaps():
    s, model = KVStore(), Model()
    s.watchers.max_pending_events = 3
    w = s.watchers.watch(b"k", b"l")

    def write(i: int) -> None:
        key = b"k%d" % (i % 4)
        if i % 7 == 6:
            request = DeleteRangeRequest(key)
            assert s.delete_range(request) == model.delete_range(request)
        elif i % 5 == 4:  # two events in one revision
            request = TxnRequest(success=[PutRequest(key, b"%d" % i), PutRequest(b"k9", b"%d" % i)])
            assert s.txn(request).revision == model.txn(request).revision
        else:
            request = PutRequest(key, b"%d" % i)
            assert s.put(request) == model.put(request)

    for i in range(60):              # nobody reads: every write still completes
        write(i)
    assert s.revision == model.revision
    assert w.pending_events <= 3     # the buffer stayed bounded ...
    assert not w.synced              # ... because the watcher fell behind

    got: list[WatchResponse] = []
    for i in range(60, 120):         # catch up while writes keep coming
        got.extend(s.watchers.poll(w))
        write(i)
        assert w.pending_events <= 3
    got.extend(drain(s, w))
    assert w.synced

    expected = model.watch_batches(b"k", b"l", 2)
    assert [(r.revision, r.events) for r in got] == expected   # in order, no gap, no duplicate
    assert not any(r.canceled for r in got)


def test_a_watcher_behind_is_woken_until_it_has_caught_up():
    """A reader that waits to be woken must be woken again while its watcher
    is behind: writes feed only synced watchers, so nothing else would (a
    watcher over 4,096 events behind stopped for good)."""
    s = KVStore()
    s.watchers.max_pending_events = 10
    wakes = []
    w = s.watchers.watch(b"p", b"q", on_ready=lambda: wakes.append(1))
    for i in range(100):
        put(s, b"p%03d" % i)
    assert not w.synced
    got: list[WatchResponse] = []
    polls = 0
    while wakes and polls < 1000:  # a reader that polls only when woken
        wakes.clear()
        got.extend(s.watchers.poll(w))
        polls += 1
    assert w.synced and len(got) == 100
    assert [r.revision for r in got] == list(range(2, 102))
    put(s, b"p-later")
    assert wakes and s.watchers.poll(w)[0].revision == 102


def test_watcher_that_falls_behind_is_cancelled_when_compaction_passes_it():
    s = KVStore()
    s.watchers.max_pending_events = 1
    w = s.watchers.watch(b"k")
    for i in range(5):
        put(s, b"k", b"%d" % i)      # revisions 2..6; the watcher falls behind at 3
    s.compact(CompactionRequest(5))
    watchers_before = len(s.watchers)

    got = drain(s, w)
    assert brief(got[:-1]) == [(2, [(PUT, b"k", b"0")])]
    cancel = got[-1]
    assert cancel.canceled and not cancel.events
    assert cancel.compact_revision == 5
    assert cancel.cancel_reason == COMPACTED_REASON == Compacted.message
    assert cancel.watch_id == w.id
    assert w.canceled
    assert len(s.watchers) == watchers_before - 1
    put(s, b"k", b"later")
    assert drain(s, w) == []


def test_watcher_behind_exactly_at_the_compaction_revision_still_catches_up():
    s = KVStore()
    s.watchers.max_pending_events = 1
    w = s.watchers.watch(b"k")
    for i in range(5):
        put(s, b"k", b"%d" % i)      # falls behind at 3
    s.compact(CompactionRequest(3))  # revision 3 itself is still readable
    got = drain(s, w)
    assert [r.revision for r in got] == [2, 3, 4, 5, 6]
    assert not any(r.canceled for r in got)


def test_watch_from_a_compacted_revision_is_cancelled():
    s = KVStore()
    for i in range(5):
        put(s, b"k", b"%d" % i)      # 2..6
    s.compact(CompactionRequest(4))
    w = s.watchers.watch(b"k", start_revision=3)
    got = drain(s, w)
    assert len(got) == 1
    assert got[0].canceled and got[0].compact_revision == 4
    assert got[0].cancel_reason == COMPACTED_REASON
    assert w.canceled
    put(s, b"k", b"later")
    assert drain(s, w) == []

    from_compaction = s.watchers.watch(b"k", start_revision=4)
    assert [r.revision for r in drain(s, from_compaction)] == [4, 5, 6, 7]


def test_watch_from_the_compaction_revision_misses_deletes_at_it_as_etcd_does():
    """etcd's compaction keeps, per key, the version visible at the compaction
    revision and drops a tombstone there (mvcc/key_index.go compact), so a watch
    that starts exactly at the compaction revision gets that revision's puts
    but not its deletes. raftkv matches; this pins the behaviour down."""
    s = KVStore()
    put(s, b"a")                                          # 2
    put(s, b"b")                                          # 3
    rev = s.txn(TxnRequest(success=[PutRequest(b"a", b"2"), DeleteRangeRequest(b"b")])).revision
    s.compact(CompactionRequest(rev))
    w = s.watchers.watch(b"a", b"c", start_revision=rev)
    assert brief(drain(s, w)) == [(rev, [(PUT, b"a", b"2")])]


# ---- progress -----------------------------------------------------------------------------


def test_request_progress_goes_to_synced_watchers_only():
    s = KVStore()
    s.watchers.max_pending_events = 1
    idle = s.watchers.watch(b"idle")
    busy = s.watchers.watch(b"busy")
    for i in range(3):
        put(s, b"busy", b"%d" % i)   # busy falls behind at revision 3
    assert not busy.synced

    s.watchers.request_progress()
    progress = s.watchers.poll(idle)
    assert len(progress) == 1
    assert progress[0].is_progress_notify
    assert progress[0].revision == s.revision == 4
    assert progress[0].watch_id == idle.id
    assert brief(s.watchers.poll(busy)) == [(2, [(PUT, b"busy", b"0")])]   # no progress queued


def test_progress_after_pending_events_reports_a_revision_covering_them():
    s = KVStore()
    w = s.watchers.watch(b"k")
    put(s, b"k")
    s.watchers.request_progress()
    got = s.watchers.poll(w)
    assert [(r.revision, r.is_progress_notify) for r in got] == [(2, False), (2, True)]


def test_periodic_progress_only_to_idle_watchers_that_asked_for_it():
    s = KVStore()
    asked = s.watchers.watch(b"quiet", progress_notify=True)
    not_asked = s.watchers.watch(b"quiet")
    busy = s.watchers.watch(b"busy", progress_notify=True)
    put(s, b"busy")

    s.watchers.send_progress_notifications()
    assert [(r.revision, r.is_progress_notify) for r in s.watchers.poll(asked)] == [(2, True)]
    assert s.watchers.poll(not_asked) == []
    assert [r.is_progress_notify for r in s.watchers.poll(busy)] == [False]  # its event only

    s.watchers.send_progress_notifications()      # busy has been idle since: now it hears
    assert [(r.revision, r.is_progress_notify) for r in s.watchers.poll(busy)] == [(2, True)]
    assert [r.is_progress_notify for r in s.watchers.poll(asked)] == [True]
    assert s.watchers.poll(not_asked) == []


# ---- cancel --------------------------------------------------------------------------------


def test_cancel_stops_delivery_and_forgets_the_watcher():
    s = KVStore()
    w = s.watchers.watch(b"k")
    other = s.watchers.watch(b"k")
    assert len(s.watchers) == 2
    rev = put(s, b"k", b"before")
    s.watchers.cancel(w)
    assert w.canceled
    assert len(s.watchers) == 1
    put(s, b"k", b"after")
    got = drain(s, w)
    assert all(r.revision <= rev for r in got)    # at most what was queued before the cancel
    assert [r.revision for r in drain(s, other)] == [rev, rev + 1]


def test_cancel_of_an_unsynced_watcher():
    s = KVStore()
    put(s, b"k")
    w = s.watchers.watch(b"k", start_revision=2)
    s.watchers.cancel(w)
    assert len(s.watchers) == 0
    assert drain(s, w) == []


# ---- bugs: behaviour that differs from etcd 3.4 -----------------------------------------------


def test_watcher_behind_at_a_delete_compacted_at_that_revision_loses_no_event():
    s = KVStore()
    s.watchers.max_pending_events = 1
    w = s.watchers.watch(b"k")
    put(s, b"k")                     # 2: queued
    rev = delete(s, b"k")            # 3: the watcher falls behind here
    s.compact(CompactionRequest(rev))
    got = drain(s, w)
    delivered = [(r.revision, [e.type for e in r.events]) for r in got if not r.canceled]
    cancelled = any(r.canceled for r in got)
    # either the delete arrives, or the watcher is told it missed something
    assert delivered == [(2, [PUT]), (3, [DELETE])] or cancelled


def test_replay_from_compaction_revision_has_no_orphan_put():
    """A txn that puts and then deletes one key in the same revision, compacted
    at that revision: etcd's keyIndex.compact drops both (the generation ends
    at the compaction revision), so a replay must not report the key created."""
    s = KVStore()
    put_then_delete = TxnRequest(success=[
        TxnRequest(success=[PutRequest(b"k", b"v")]),
        TxnRequest(success=[DeleteRangeRequest(b"k")]),  # etcd allows this order
    ])
    rev = s.txn(put_then_delete).revision
    assert s.value_at(b"k", rev) is None
    s.compact(CompactionRequest(rev))
    w = s.watchers.watch(b"k", start_revision=rev)
    assert brief(drain(s, w)) == []


def test_prev_kv_of_a_delete_after_a_put_in_the_same_revision():
    s = KVStore()
    put(s, b"k", b"old")                                   # 2
    live = s.watchers.watch(b"k", prev_kv=True)
    rev = s.txn(TxnRequest(success=[
        TxnRequest(success=[PutRequest(b"k", b"new")]),
        TxnRequest(success=[DeleteRangeRequest(b"k")]),
    ])).revision
    replay = s.watchers.watch(b"k", start_revision=rev, prev_kv=True)
    as_of_before = KeyValue(b"k", 2, 2, 1, b"old")
    replayed = [e.prev_kv for r in drain(s, replay) for e in r.events]
    assert replayed == [as_of_before, as_of_before]
    live_prevs = [e.prev_kv for r in drain(s, live) for e in r.events]
    assert live_prevs == replayed


# ---- property: every watcher gets exactly the model's events ------------------------------------

KEYS = [b"a", b"ab", b"b", b"ba", b"c"]
WATCH_RANGES = [
    (b"a", b""), (b"b", b""), (b"ab", b""), (b"a", b"b"), (b"a", b"c"), (b"a", b"c"),
    (b"b", FROM_KEY), (b"a", FROM_KEY), (FROM_KEY, FROM_KEY), (FROM_KEY, FROM_KEY),
    (b"c", b"a"),  # an inverted range: selects nothing
]
keys = st.sampled_from(KEYS)
values = st.sampled_from([b"x", b"y", b"z"])


def write_requests() -> st.SearchStrategy:
    puts = st.builds(PutRequest, key=keys, value=values)
    deletes = st.builds(
        DeleteRangeRequest, key=keys,
        range_end=st.sampled_from([b"", b"", b"", b"b", b"c", FROM_KEY]),
    )
    # Flat txns, and no from-key deletes in them: then etcd's duplicate-key
    # rule keeps a key from being put and deleted in one revision (a from-key
    # delete is an empty interval to that rule). That case has a prev_kv of its
    # own (test_prev_kv_of_a_delete_after_a_put_in_the_same_revision).
    txn_deletes = st.builds(
        DeleteRangeRequest, key=keys, range_end=st.sampled_from([b"", b"", b"b", b"c"]),
    )
    txns = st.builds(
        TxnRequest,
        compare=st.lists(
            st.builds(Compare, key=keys, target=st.just(CompareTarget.VERSION),
                      result=st.sampled_from(CompareResult), operand=st.integers(0, 2)),
            max_size=1,
        ),
        success=st.lists(st.one_of(puts, txn_deletes), max_size=3),
        failure=st.lists(st.one_of(puts, txn_deletes), max_size=3),
    )
    return st.one_of(puts, puts, deletes, txns)


class _Tracked:
    """One watcher and what it has received so far."""

    def __init__(self, watcher, key, range_end, start, prev_kv, no_put, no_delete):
        self.watcher = watcher
        self.key, self.range_end, self.start = key, range_end, start
        self.flags = dict(prev_kv=prev_kv, no_put=no_put, no_delete=no_delete)
        self.batches: list[tuple[int, list]] = []
        self.ended = False
        self.cancelled_at: int | None = None  # the revision of a user cancel

    @property
    def last_revision(self) -> int:
        return self.batches[-1][0] if self.batches else 0


class WatchersAgainstModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = KVStore()
        self.model = Model()
        self.tracked: list[_Tracked] = []
        self.compactions: set[int] = set()

    @initialize(
        buffer=st.integers(1, 4), history=st.lists(write_requests(), max_size=6),
        watchers=st.integers(1, 3), data=st.data(),
    )
    def start(self, buffer, history, watchers, data):
        """A small buffer, some history and a few watchers to begin with."""
        self.store.watchers.max_pending_events = buffer
        for request in history:
            self.write(request)
        for _ in range(watchers):
            self.watch(
                span=data.draw(st.sampled_from(WATCH_RANGES)),
                when=data.draw(st.sampled_from(["now", "past", "future"])),
                data=data, prev_kv=data.draw(st.booleans()),
                no_put=data.draw(st.booleans()), no_delete=data.draw(st.booleans()),
            )

    @rule(requests=st.lists(write_requests(), min_size=1, max_size=8))
    def write_burst(self, requests):
        for request in requests:
            self.write(request)

    @rule(request=write_requests())
    def write(self, request):
        apply_model = {PutRequest: self.model.put, DeleteRangeRequest: self.model.delete_range,
                       TxnRequest: self.model.txn}[type(request)]
        try:
            apply_model(request)
            expected_error = None
        except RaftKVError as exc:
            expected_error = type(exc)
        try:
            self.store.apply(request)
            actual_error = None
        except RaftKVError as exc:
            actual_error = type(exc)
        assert actual_error is expected_error
        assert self.store.revision == self.model.revision

    @rule(
        span=st.sampled_from(WATCH_RANGES),
        when=st.sampled_from(["now", "past", "future"]),
        data=st.data(),
        prev_kv=st.booleans(), no_put=st.booleans(), no_delete=st.booleans(),
    )
    def watch(self, span, when, data, prev_kv, no_put, no_delete):
        key, range_end = span
        rev = self.model.revision
        start = {"now": st.just(0), "past": st.integers(1, rev),
                 "future": st.integers(rev + 1, rev + 3)}[when]
        start_revision = data.draw(start)
        w = self.store.watchers.watch(
            key, range_end, start_revision, prev_kv=prev_kv, no_put=no_put, no_delete=no_delete,
        )
        effective_start = start_revision if start_revision > 0 else rev + 1
        self.tracked.append(_Tracked(w, key, range_end, effective_start, prev_kv, no_put, no_delete))

    @rule(data=st.data())
    def poll(self, data):
        if self.tracked:
            t = data.draw(st.sampled_from(self.tracked))
            self.receive(t, self.store.watchers.poll(t.watcher))

    @rule(data=st.data())
    def cancel(self, data):
        live = [t for t in self.tracked if t.cancelled_at is None and not t.watcher.canceled]
        if live and data.draw(st.integers(1, 4)) == 1:  # rarely: it ends a watcher
            t = data.draw(st.sampled_from(live))
            self.store.watchers.cancel(t.watcher)
            t.cancelled_at = self.model.revision

    @rule()
    def request_progress(self):
        self.store.watchers.request_progress()

    @rule(data=st.data())
    def compact(self, data):
        # only at revisions without deletes: a watch from a revision with one misses
        # it, as etcd's does (test_watch_from_the_compaction_revision_misses_deletes_at_it_as_etcd_does)
        model = self.model
        candidates = [
            rev for rev in range(max(model.compact_revision + 1, 1), model.revision + 1)
            if all(e.type == PUT for e in model.events.get(rev, []))
        ]
        if candidates:
            rev = data.draw(st.sampled_from(candidates))
            self.store.compact(CompactionRequest(rev))
            model.compact(rev)
            self.compactions.add(rev)

    def expected(self, t: _Tracked):
        return self.model.watch_batches(t.key, t.range_end, t.start, **t.flags)

    def receive(self, t: _Tracked, responses: list[WatchResponse]) -> None:
        for response in responses:
            assert not t.ended, "a response after the watcher ended"
            assert response.watch_id == t.watcher.id
            expected = self.expected(t)
            if response.canceled:
                assert t.cancelled_at is None, "a user-cancelled watcher got a cancel response"
                assert response.cancel_reason == COMPACTED_REASON
                assert response.compact_revision in self.compactions
                # justified: it needed a revision that compaction removed
                undelivered = expected[len(t.batches):]
                needed = undelivered[0][0] if undelivered else None
                assert (needed is not None and needed < response.compact_revision) or (
                    not t.batches and t.start < response.compact_revision
                ), (response, t.batches, expected)
                t.ended = True
            elif response.is_progress_notify:
                # progress at P promises every event up to P has been delivered
                assert all(rev > response.revision for rev, _ in expected[len(t.batches):])
                assert response.revision <= self.model.revision
            else:
                assert len(t.batches) < len(expected), (response, "more than expected")
                rev, events = expected[len(t.batches)]
                assert response.revision == rev, (response, expected[len(t.batches)])
                if t.cancelled_at is not None:
                    assert rev <= t.cancelled_at
                assert len(response.events) == len(events)
                for got, want in zip(response.events, events):
                    assert (got.type, got.kv) == (want.type, want.kv)
                    if got.prev_kv != want.prev_kv:
                        # etcd reads prev_kv at send time at rev - 1: once that is
                        # compacted away there is none to send
                        assert got.prev_kv is None and rev - 1 < self.model.compact_revision, (
                            got, want)
                t.batches.append((rev, events))

    def teardown(self) -> None:
        for t in self.tracked:
            if not t.ended:
                self.receive(t, drain(self.store, t.watcher))
            if not t.ended and t.cancelled_at is None:
                assert [rev for rev, _ in t.batches] == [rev for rev, _ in self.expected(t)], (
                    "a watcher that was neither cancelled nor compacted missed events")
                assert t.watcher.synced


WatchersAgainstModel.TestCase.settings = settings(
    max_examples=300,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
TestWatchersAgainstModel = WatchersAgainstModel.TestCase


def test_a_watch_for_later_revisions_gets_none_earlier_when_the_state_is_replaced():
    """A member that installs a snapshot rewinds its watchers to where it
    was; one created for revisions after that must not be sent the ones
    before its start (a follower installing a leader's snapshot did)."""
    leader = KVStore()
    for i in range(30):
        put(leader, b"k%d" % i)
    follower = KVStore()
    put(follower, b"k0")
    w = follower.watchers.watch(b"k", b"l", start_revision=25)
    assert w.synced  # nothing up to 25 exists here yet: it waits, synced
    follower.restore(leader.snapshot())
    got = drain(follower, w)
    assert [r.revision for r in got] == list(range(25, 32))


def test_a_state_built_apart_and_taken_over_is_the_same_as_a_restore():
    """take_state_of (a snapshot's state built off the Raft thread, then
    taken over) leaves the store as restore would: the same data, sizes and
    leases, and watchers resuming where they were."""
    leader = KVStore()
    leader.lease_grant(LeaseGrantRequest(id=7, ttl=60))
    for i in range(30):
        leader.put(PutRequest(key=b"k%d" % i, value=b"v" * i, lease=7 if i % 3 == 0 else 0))
    restored, taken = KVStore(), KVStore()
    for store in (restored, taken):
        put(store, b"k0")
    watches = [s.watchers.watch(b"k", b"l", start_revision=2) for s in (restored, taken)]
    restored.restore(leader.snapshot())
    built = KVStore()
    built.restore(leader.snapshot())
    taken.take_state_of(built)
    assert taken.snapshot() == restored.snapshot() == leader.snapshot()
    assert (taken.revision, taken.key_count, taken.size_in_use) == (leader.revision, 30, leader.size_in_use)
    assert [r.revision for r in drain(taken, watches[1])] == [r.revision for r in drain(restored, watches[0])]
