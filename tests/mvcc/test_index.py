"""KeyIndex and prefix_end: etcd's (key, range_end) conventions.

etcd: treeIndex.visit (mvcc/index.go) walks keys >= key and stops at end
unless end is empty; apply.go mkGteRange turns range_end "\\0" into that
empty end; clientv3/op.go getPrefix computes prefix ends.
"""

from __future__ import annotations

import pytest

from raftkv.mvcc.index import ALL_KEYS_FROM, KeyIndex, prefix_end


def index_of(*names: bytes) -> KeyIndex:
    index = KeyIndex()
    for name in names:
        index.get_or_create(name)
    return index


def listed(index: KeyIndex, key: bytes, range_end: bytes = b"") -> list[bytes]:
    return [h.key for h in index.range(key, range_end)]


KEYS = (b"a", b"ab", b"b", b"c", b"\xff", b"\x00", b"ba")


def test_etcd_empty_range_end_selects_the_key_alone():
    """etcd: a nil range end is a single-key Get (index.go Revisions/Range, end == nil)."""
    index = index_of(*KEYS)
    assert listed(index, b"a") == [b"a"]
    assert listed(index, b"zz") == []


def test_etcd_range_end_selects_the_half_open_interval():
    """etcd: [key, end) in byte order; end is excluded."""
    index = index_of(*KEYS)
    assert listed(index, b"a", b"b") == [b"a", b"ab"]
    assert listed(index, b"ab", b"c") == [b"ab", b"b", b"ba"]
    assert listed(index, b"a", b"ba") == [b"a", b"ab", b"b"]


def test_etcd_range_end_zero_byte_selects_every_key_from_key_on():
    """etcd: range_end "\\0" means all keys >= key (apply.go mkGteRange)."""
    index = index_of(*KEYS)
    assert ALL_KEYS_FROM == b"\x00"
    assert listed(index, b"b", b"\x00") == [b"b", b"ba", b"c", b"\xff"]
    assert listed(index, b"\x00", b"\x00") == sorted(KEYS)


def test_etcd_range_end_at_or_below_key_selects_nothing():
    """etcd: visit stops at the first key >= end, which is already >= key."""
    index = index_of(*KEYS)
    assert listed(index, b"b", b"b") == []
    assert listed(index, b"c", b"b") == []
    assert listed(index, b"ab", b"a") == []


def test_etcd_index_is_in_byte_order():
    """etcd's btree orders keys with bytes.Compare."""
    index = index_of(*KEYS)
    assert [h.key for h in index.histories()] == sorted(KEYS)
    assert len(index) == len(KEYS)


def test_index_get_or_create_and_remove():
    """A key's history is created once and removed when compaction empties it."""
    index = KeyIndex()
    h = index.get_or_create(b"k")
    assert index.get_or_create(b"k") is h
    assert index.get(b"k") is h
    index.remove(b"k")
    assert index.get(b"k") is None
    assert len(index) == 0
    index.remove(b"k")  # removing twice is harmless


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        (b"a", b"b"),
        (b"ab", b"ac"),
        (b"\x00", b"\x01"),
        (b"a\xff", b"b"),
        (b"a\xff\xff", b"b"),
        (b"\x01\xfe\xff", b"\x01\xff"),
        (b"\xff", b"\x00"),
        (b"\xff\xff", b"\x00"),
        (b"", b"\x00"),
    ],
)
def test_etcd_prefix_end(prefix, end):
    """etcd's getPrefix (clientv3/op.go): increment the last byte below 0xff and
    drop what follows; with no such byte (all 0xff, or empty) the end is
    noPrefixEnd = "\\0", i.e. every key from the prefix on."""
    assert prefix_end(prefix) == end


def test_etcd_prefix_range_selects_exactly_the_prefixed_keys():
    """etcd: [prefix, prefix_end(prefix)) holds every key starting with prefix."""
    names = (b"a", b"a\xff", b"a\xff\x00", b"a\xff\xff", b"b", b"a\xfe", b"\xff\xff", b"\xff\xff\x01")
    index = index_of(*names)
    for prefix in (b"a", b"a\xff", b"\xff\xff", b""):
        start = prefix or b"\x00"  # clientv3 sends key "\0" for an empty prefix
        expected = sorted(n for n in names if n.startswith(prefix))
        assert listed(index, start, prefix_end(prefix)) == expected
