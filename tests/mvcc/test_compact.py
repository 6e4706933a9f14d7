"""Compaction: what it forgets, what it keeps, and its errors.

Reference: etcd 3.4 mvcc/kvstore.go (updateCompactRev, compact),
mvcc/key_index.go (compact), mvcc/kvstore_txn.go (rangeKeys),
etcdserver/apply.go (Compaction: header revision is the current one).
"""

from __future__ import annotations

import pytest

from raftkv.errors import Compacted, FutureRevision
from raftkv.mvcc import CompactionRequest, CompactionResponse

from mvcc_helpers import compact, delete, get, get_one, history, put

COMPACTED = "etcdserver: mvcc: required revision has been compacted"
FUTURE = "etcdserver: mvcc: required revision is a future revision"


@pytest.fixture
def written(store):
    """a: 1@2 2@4 3@6; b: 1@3, deleted @5; c: 1@7."""
    put(store, b"a", b"1")  # 2
    put(store, b"b", b"1")  # 3
    put(store, b"a", b"2")  # 4
    delete(store, b"b")  # 5
    put(store, b"a", b"3")  # 6
    put(store, b"c", b"1")  # 7
    return store


def snapshot(store):
    return [(kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease)
            for kv in get(store, b"\x00", b"\x00").kvs]


def test_etcd_store_starts_uncompacted(store):
    """etcd: compactMainRev starts at -1."""
    assert store.compact_revision == -1


def test_etcd_compaction_response_is_the_current_revision(written):
    """etcd Compaction: header revision is read after compacting (the current
    revision); compaction itself makes no revision."""
    r = compact(written, 4)
    assert isinstance(r, CompactionResponse)
    assert r.revision == 7 == written.revision
    assert written.compact_revision == 4


def test_etcd_reading_below_the_compaction_revision_fails(written):
    """etcd rangeKeys: rev < compactMainRev -> ErrCompacted."""
    compact(written, 4)
    for rev in (1, 2, 3):
        with pytest.raises(Compacted) as e:
            get(written, b"a", revision=rev)
        assert str(e.value) == COMPACTED


def test_etcd_reading_at_the_compaction_revision_still_works(written):
    """etcd keeps, per key, the version visible at the compaction revision."""
    compact(written, 4)
    r = get(written, b"\x00", b"\x00", revision=4)
    assert [(kv.key, kv.value, kv.version, kv.mod_revision) for kv in r.kvs] == [
        (b"a", b"2", 2, 4), (b"b", b"1", 1, 3)]
    r = get(written, b"\x00", b"\x00", revision=5)
    assert [(kv.key, kv.value) for kv in r.kvs] == [(b"a", b"2")]


def test_etcd_compaction_keeps_an_old_version_still_visible(written):
    """b's only version (@3) is older than the compaction at 4 but still visible at it."""
    compact(written, 4)
    kv = get_one(written, b"b", revision=4)
    assert (kv.value, kv.mod_revision) == (b"1", 3)


def test_etcd_compaction_leaves_current_data_unchanged(written):
    before = snapshot(written)
    compact(written, 7)
    assert snapshot(written) == before
    assert written.key_count == 2


def test_etcd_compaction_does_not_reset_versions_or_create_revisions(written):
    """etcd keeps the generation's created revision and version count."""
    compact(written, 7)
    put(written, b"a", b"4")
    kv = get_one(written, b"a")
    assert (kv.create_revision, kv.version, kv.mod_revision) == (2, 4, 8)


def test_etcd_compaction_forgets_the_history_below_it(written):
    """etcd deletes every revision below the compaction revision from the backend."""
    compact(written, 4)
    assert [rev for rev, _ in history(written)] == [4, 5, 6, 7]
    assert history(written, 1)[0] == (4, [(b"a", 2)])


def test_etcd_keys_deleted_before_compaction_disappear_from_the_index(written):
    """etcd keyIndex.compact removes a generation ended by a tombstone at or below
    the compaction revision; an empty keyIndex is removed from the tree."""
    compact(written, 6)
    assert written._index.get(b"b") is None  # the index itself forgot b
    assert get_one(written, b"b", revision=6) is None
    assert [rev for rev, _ in history(written)] == [6, 7]


def test_etcd_key_deleted_at_the_compaction_revision_disappears(written):
    compact(written, 5)
    assert written._index.get(b"b") is None
    assert history(written, 1)[0][0] == 6  # the tombstone at 5 is not kept


def test_etcd_key_deleted_after_the_compaction_revision_stays_readable(written):
    compact(written, 4)
    assert written._index.get(b"b") is not None
    assert get_one(written, b"b", revision=4).value == b"1"
    assert get_one(written, b"b") is None


def test_etcd_key_recreated_after_compaction(written):
    compact(written, 7)
    put(written, b"b", b"again")
    kv = get_one(written, b"b")
    assert (kv.create_revision, kv.version) == (8, 1)


@pytest.mark.parametrize("again", [4, 3, 1])
def test_etcd_compacting_at_or_below_the_last_compaction_fails(written, again):
    """etcd updateCompactRev: rev <= compactMainRev -> ErrCompacted."""
    compact(written, 4)
    with pytest.raises(Compacted) as e:
        compact(written, again)
    assert str(e.value) == COMPACTED
    assert written.compact_revision == 4


def test_etcd_compacting_a_future_revision_fails(written):
    """etcd updateCompactRev: rev > currentRev -> ErrFutureRev."""
    with pytest.raises(FutureRevision) as e:
        compact(written, 8)
    assert str(e.value) == FUTURE
    assert written.compact_revision == -1
    assert get_one(written, b"a", revision=2).value == b"1"


def test_etcd_compacting_at_the_current_revision_works(written):
    compact(written, 7)
    assert get_one(written, b"a", revision=7).value == b"3"
    with pytest.raises(Compacted):
        get(written, b"a", revision=6)


def test_etcd_compacting_an_empty_store(store):
    """An empty store is at revision 1, so compacting at 1 works and 2 is future."""
    compact(store, 1)
    assert store.compact_revision == 1
    with pytest.raises(FutureRevision):
        compact(store, 2)


def test_etcd_successive_compactions(written):
    compact(written, 3)
    compact(written, 5)
    assert written.compact_revision == 5
    with pytest.raises(Compacted):
        get(written, b"a", revision=4)
    assert get_one(written, b"a", revision=5).value == b"2"


def test_etcd_writes_continue_after_compaction(written):
    compact(written, 7)
    assert put(written, b"d").revision == 8
    assert get(written, b"\x00", b"\x00", revision=7).count == 2


def test_compaction_through_apply(written):
    r = written.apply(CompactionRequest(5))
    assert r.revision == 7
    assert written.compact_revision == 5
