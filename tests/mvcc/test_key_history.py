"""KeyHistory: one key's versions, as etcd's keyIndex (mvcc/key_index.go).

etcd's own example (key_index.go, comment above ``type keyIndex``) is
put(1) put(2) tombstone(3) put(4) tombstone(5); several tests replay it.
"""

from __future__ import annotations

from raftkv.mvcc.key_history import KeyHistory
from raftkv.mvcc.types import KeyValue, tombstone

K = b"foo"


def kv(rev: int, create: int, version: int, value: bytes = b"") -> KeyValue:
    return KeyValue(K, create, rev, version, value or b"v%d" % rev)


def etcd_example() -> KeyHistory:
    """put(1) put(2) tombstone(3) put(4) tombstone(5), as in key_index.go."""
    h = KeyHistory(K)
    h.record(kv(1, 1, 1))
    h.record(kv(2, 1, 2))
    h.record(tombstone(K, 3))
    h.record(kv(4, 4, 1))
    h.record(tombstone(K, 5))
    return h


def revisions(h: KeyHistory) -> list[int]:
    return [v.mod_revision for v in h.versions]


def test_etcd_has_no_version_of_a_key_never_written():
    """etcd's keyIndex.get fails (ErrRevisionNotFound) on a key with no revisions."""
    h = KeyHistory(K)
    assert h.latest() is None
    assert h.at(1) is None
    assert h.at(100) is None


def test_etcd_reads_the_newest_version_at_or_below_the_revision():
    """etcd's keyIndex.get(atRev) walks back to the first rev.main <= atRev."""
    h = KeyHistory(K)
    h.record(kv(2, 2, 1))
    h.record(kv(5, 2, 2))
    h.record(kv(9, 2, 3))
    assert h.at(1) is None
    assert h.at(2).mod_revision == 2
    assert h.at(4).mod_revision == 2
    assert h.at(5).mod_revision == 5
    assert h.at(8).version == 2
    assert h.at(9).version == 3
    assert h.at(1000).mod_revision == 9
    assert h.latest().mod_revision == 9


def test_etcd_does_not_see_a_key_at_or_after_its_tombstone():
    """etcd's findGeneration returns nil when the generation's tombstone is <= rev."""
    h = etcd_example()
    assert h.at(2).mod_revision == 2
    assert h.at(3) is None
    assert h.at(4).mod_revision == 4
    assert h.at(5) is None
    assert h.at(6) is None
    assert h.latest() is None


def test_etcd_starts_a_new_generation_after_a_tombstone():
    """etcd: a put after a tombstone is version 1 of a new generation, with its own
    create revision (key_index.go put: g.created = rev on an empty generation)."""
    h = etcd_example()
    v = h.at(4)
    assert (v.create_revision, v.version) == (4, 1)
    assert h.at(2).create_revision == 1


def test_etcd_latest_is_the_live_version_now():
    """The newest version is live unless it is a tombstone."""
    h = KeyHistory(K)
    h.record(kv(3, 3, 1))
    assert h.latest() == kv(3, 3, 1)
    h.record(tombstone(K, 4))
    assert h.latest() is None
    h.record(kv(6, 6, 1))
    assert h.latest() == kv(6, 6, 1)


def test_a_second_change_in_the_same_revision_replaces_the_first():
    """etcd records two changes of one key in one txn as subs of the same main
    revision; a read sees the later (higher sub) one, so only it is kept."""
    h = KeyHistory(K)
    h.record(kv(2, 2, 1))
    h.record(tombstone(K, 3))
    h.record(kv(3, 3, 1, b"again"))
    assert revisions(h) == [2, 3]
    assert h.at(3).value == b"again"
    assert h.at(2).value == b"v2"


def test_etcd_compact_keeps_the_version_visible_at_the_revision():
    """etcd: compact(2) on the example keeps {2, 3(t)} {4, 5(t)} (key_index.go)."""
    h = etcd_example()
    assert [v.mod_revision for v in h.compact(2)] == [1]
    assert revisions(h) == [2, 3, 4, 5]
    assert h.at(2).mod_revision == 2


def test_etcd_compact_drops_a_generation_ended_at_or_below_the_revision():
    """etcd: compact(4) on the example keeps only {4, 5(t)}; compacting at the
    tombstone revision itself (3) drops that generation too."""
    h = etcd_example()
    assert [v.mod_revision for v in h.compact(4)] == [1, 2, 3]
    assert revisions(h) == [4, 5]
    h = etcd_example()
    assert [v.mod_revision for v in h.compact(3)] == [1, 2, 3]
    assert revisions(h) == [4, 5]


def test_etcd_compact_at_or_after_the_last_tombstone_empties_the_key():
    """etcd: compact(5) and compact(6) on the example leave an empty keyIndex,
    which is then removed from the index."""
    for rev in (5, 6):
        h = etcd_example()
        assert [v.mod_revision for v in h.compact(rev)] == [1, 2, 3, 4, 5]
        assert h.versions == []


def test_etcd_compact_below_every_version_changes_nothing():
    """A compaction older than the key's first write keeps all of it."""
    h = KeyHistory(K)
    h.record(kv(5, 5, 1))
    h.record(kv(7, 5, 2))
    assert h.compact(4) == []
    assert revisions(h) == [5, 7]


def test_etcd_compact_of_a_live_key_keeps_its_current_version():
    """A live key keeps at least its newest version, however far ahead the compaction."""
    h = KeyHistory(K)
    h.record(kv(2, 2, 1))
    h.record(kv(3, 2, 2))
    assert [v.mod_revision for v in h.compact(10)] == [2]
    assert revisions(h) == [3]
    assert h.at(10).version == 2
