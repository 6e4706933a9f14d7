"""History: the changes of each revision, replayed by watchers (etcd reads
them from its backend by revision; compaction deletes what it need not keep)."""

from __future__ import annotations


from raftkv.mvcc import CompactionRequest, DeleteRangeRequest, KVStore, PutRequest
from raftkv.mvcc.history import History
from raftkv.mvcc.types import KeyValue, tombstone

from mvcc_helpers import history, put, txn


def kv(key: bytes, rev: int, version: int = 1) -> KeyValue:
    return KeyValue(key, rev, rev, version, b"x")


def sample() -> History:
    h = History()
    h.append(2, [kv(b"a", 2)])
    h.append(3, [kv(b"b", 3), kv(b"c", 3)])
    h.append(4, [tombstone(b"a", 4)])
    h.append(6, [kv(b"a", 6)])
    return h


def revs(h: History, since: int = 0) -> list[int]:
    return [rev for rev, _ in h.since(since)]


def test_etcd_replays_every_revision_from_the_start_revision_on():
    """A watcher starting at revision r gets revision r and every later one, oldest first."""
    h = sample()
    assert revs(h, 0) == [2, 3, 4, 6]
    assert revs(h, 3) == [3, 4, 6]
    assert revs(h, 5) == [6]
    assert revs(h, 6) == [6]
    assert revs(h, 7) == []


def test_etcd_replays_all_changes_of_a_revision_together_in_order():
    """The changes of one revision keep their order (etcd's sub revisions)."""
    h = sample()
    (rev, changes), *_ = h.since(3)
    assert rev == 3
    assert [c.key for c in changes] == [b"b", b"c"]


def test_etcd_compaction_forgets_revisions_below_it():
    """etcd deletes backend revisions below the compaction revision."""
    h = sample()
    h.compact(4)
    assert revs(h) == [6]  # the delete at 4 goes too (next test)
    h = sample()
    h.compact(3)
    assert revs(h) == [3, 4, 6]


def test_etcd_compaction_drops_tombstones_at_the_compaction_revision():
    """etcd keeps, per key, the revision visible at the compaction revision, but
    not a tombstone (key_index.go compact: "If the largest one is a tombstone,
    it will not be kept")."""
    h = History()
    h.append(2, [kv(b"a", 2)])
    h.append(3, [kv(b"b", 3), tombstone(b"a", 3)])
    h.compact(3)
    assert [(rev, [(c.key, c.version) for c in ch]) for rev, ch in h.since(0)] == [(3, [(b"b", 1)])]


def test_etcd_compaction_at_a_revision_of_only_tombstones_leaves_no_entry():
    """A revision that only deleted keys leaves nothing behind once compacted at."""
    h = History()
    h.append(2, [kv(b"a", 2)])
    h.append(3, [tombstone(b"a", 3)])
    h.append(4, [kv(b"b", 4)])
    h.compact(3)
    assert revs(h) == [4]


def test_compaction_at_a_revision_with_no_changes_keeps_the_later_ones():
    """Compacting at a revision absent from the history keeps every later one."""
    h = sample()
    h.compact(5)
    assert revs(h) == [6]
    h.compact(100)
    assert revs(h) == []


def test_etcd_store_logs_one_entry_per_write_revision():
    """Each write request adds exactly one revision to the history."""
    s = KVStore()
    put(s, b"a")
    txn(s, success=[PutRequest(b"b", b"1"), PutRequest(b"c", b"1")])
    s.delete_range(DeleteRangeRequest(b"a"))
    assert history(s) == [(2, [(b"a", 1)]), (3, [(b"b", 1), (b"c", 1)]), (4, [(b"a", 0)])]


def test_etcd_compaction_drops_a_put_deleted_later_in_the_same_revision():
    """etcd allows txn [put b, delete ["a", "\\0")] (the "\\0" delete interval is
    empty for checkIntervals), so b is put (sub 0) and deleted (sub 1) at one
    revision. Compacting at it: keyIndex.doCompact skips the generation whose
    tombstone is <= the revision, so neither b revision is kept and a watcher
    replaying from there sees nothing for b."""
    s = KVStore()
    put(s, b"a")
    txn(s, success=[PutRequest(b"b", b"1"), DeleteRangeRequest(b"a", b"\x00")])
    assert s.revision == 3
    s.compact(CompactionRequest(3))
    assert history(s, 3) == []
