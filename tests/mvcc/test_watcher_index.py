"""The watcher index finds exactly the watchers a brute-force scan finds."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import count

from hypothesis import given, settings
from hypothesis import strategies as st

from raftkv.mvcc.index import ALL_KEYS_FROM, prefix_end
from raftkv.mvcc.watcher_index import WatcherIndex

_ids = count()


@dataclass(eq=False)
class W:
    key: bytes
    range_end: bytes
    id: int = field(default_factory=lambda: next(_ids))

    def holds(self, key: bytes) -> bool:
        if not self.range_end:
            return key == self.key
        if self.range_end == ALL_KEYS_FROM:
            return key >= self.key
        return self.key <= key < self.range_end


# a small alphabet with the bytes where prefix ends and ranges turn over
keys = st.binary(max_size=4).map(lambda b: bytes(b"a\x00\xff"[x % 3] for x in b))


@st.composite
def watchers(draw) -> W:
    key = draw(keys)
    shape = draw(st.sampled_from(["key", "prefix", "from", "range"]))
    if shape == "key":
        return W(key, b"")
    if shape == "prefix":
        return W(key, prefix_end(key))
    if shape == "from":
        return W(key, ALL_KEYS_FROM)
    return W(key, draw(keys.filter(lambda end: end not in (b"", ALL_KEYS_FROM))))


@settings(max_examples=300)
@given(st.lists(st.tuples(st.sampled_from(["add", "discard"]), watchers(), st.integers(0, 50)), max_size=40),
       st.lists(keys, min_size=1, max_size=10))
def test_matching_is_what_a_scan_finds(steps, probes):
    index: WatcherIndex[W] = WatcherIndex()
    live: list[W] = []
    for action, new, pick in steps:
        if action == "add" or not live:
            index.add(new)
            live.append(new)
        else:
            gone = live.pop(pick % len(live))
            index.discard(gone)
        assert len(index) == len(live)
    assert set(index) == set(live)
    for key in probes + [w.key for w in live]:
        found = list(index.matching(key))
        assert len(found) == len(set(found)), "a watcher found twice"
        assert set(found) == {w for w in live if w.holds(key)}


def test_adding_twice_and_discarding_an_absent_watcher_change_nothing():
    index: WatcherIndex[W] = WatcherIndex()
    w = W(b"app/", prefix_end(b"app/"))
    index.add(w)
    index.add(w)
    index.discard(W(b"app/", prefix_end(b"app/")))
    assert len(index) == 1 and list(index.matching(b"app/x")) == [w]
    index.discard(w)
    assert len(index) == 0 and list(index.matching(b"app/x")) == []


def test_a_prefix_of_0xff_bytes_watches_every_key_from_it():
    index: WatcherIndex[W] = WatcherIndex()
    w = W(b"\xff\xff", prefix_end(b"\xff\xff"))
    index.add(w)
    assert list(index.matching(b"\xff\xff\x00")) == [w]
    assert list(index.matching(b"\xff\xfe")) == []
