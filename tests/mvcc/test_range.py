"""Range: revisions, per-key metadata, limit/count, sort, filters, past reads.

Reference: etcd 3.4 etcdserver/apply.go (applierV3backend.Range) and
mvcc/kvstore_txn.go (rangeKeys, put, deleteRange, End).
"""

from __future__ import annotations

import pytest

from raftkv.errors import Compacted, EmptyKey, FutureRevision
from raftkv.mvcc import (
    CompactionRequest,
    DeleteRangeRequest,
    KVStore,
    PutRequest,
    RangeRequest,
    SortOrder,
    SortTarget,
)

from mvcc_helpers import compact, delete, get, get_one, grant, keys, put, txn

ASC, DESC, NONE = SortOrder.ASCEND, SortOrder.DESCEND, SortOrder.NONE


def five_keys(s: KVStore) -> None:
    for name in (b"k1", b"k2", b"k3", b"k4", b"k5"):
        put(s, name, name + b"-value")


def ordered_store() -> KVStore:
    """Three keys whose key/create/mod/version/value orders all differ:

    a: create 3, mod 6, version 3, value "a"   (key order a b c)
    b: create 4, mod 4, version 1, value "z"   (create  c a b; mod   b a c)
    c: create 2, mod 7, version 2, value "m"   (version b c a; value a c b)
    """
    s = KVStore()
    put(s, b"c", b"x")  # 2
    put(s, b"a", b"x")  # 3
    put(s, b"b", b"z")  # 4
    put(s, b"a", b"x")  # 5
    put(s, b"a", b"a")  # 6
    put(s, b"c", b"m")  # 7
    return s


# ---- revisions --------------------------------------------------------------


def test_etcd_empty_store_is_at_revision_1(store):
    """etcd's store starts with currentRev 1 (kvstore.go NewStore: currentRev: 1)."""
    assert store.revision == 1
    r = get(store, b"a", b"\x00")
    assert (r.revision, r.kvs, r.count, r.more) == (1, [], 0, False)


def test_etcd_each_put_makes_one_new_revision(store):
    """etcd: Put returns beginRev + 1 and End() increments currentRev once."""
    assert put(store, b"a").revision == 2
    assert put(store, b"a").revision == 3
    assert put(store, b"b").revision == 4
    assert store.revision == 4
    assert get(store, b"zz").revision == 4


def test_etcd_one_write_request_makes_one_revision_shared_by_all_its_changes(store):
    """etcd: every change of one write txn is written at main revision beginRev+1."""
    r = txn(store, success=[PutRequest(b"a", b"1"), PutRequest(b"b", b"1"), PutRequest(b"c", b"1")])
    assert r.revision == 2 == store.revision
    assert [kv.mod_revision for kv in get(store, b"a", b"\x00").kvs] == [2, 2, 2]
    d = delete(store, b"a", b"c")
    assert (d.revision, d.deleted) == (3, 2)
    assert store.revision == 3


def test_etcd_a_delete_that_removes_nothing_makes_no_revision(store):
    """etcd: storeTxnWrite.DeleteRange returns (0, beginRev) when nothing is
    deleted, and End() only increments currentRev when there were changes."""
    put(store, b"a")
    d = delete(store, b"zz")
    assert (d.revision, d.deleted) == (2, 0)
    d = delete(store, b"b", b"z")
    assert (d.revision, d.deleted) == (2, 0)
    assert store.revision == 2
    assert put(store, b"x").revision == 3


def test_etcd_deleting_an_already_deleted_key_makes_no_revision(store):
    """A tombstoned key is not in range, so deleting it again changes nothing."""
    put(store, b"a")
    assert delete(store, b"a").revision == 3
    d = delete(store, b"a")
    assert (d.revision, d.deleted) == (3, 0)
    assert store.revision == 3


# ---- per-key metadata -------------------------------------------------------


def test_etcd_first_put_sets_create_and_mod_revision_and_version_1(store):
    """etcd put: a new key gets CreateRevision = ModRevision = rev, Version 1."""
    put(store, b"x")
    put(store, b"a", b"hello")
    kv = get_one(store, b"a")
    assert (kv.key, kv.value, kv.create_revision, kv.mod_revision, kv.version, kv.lease) == (
        b"a", b"hello", 3, 3, 1, 0)


def test_etcd_overwrite_keeps_create_revision_and_bumps_version(store):
    """etcd put: an existing key keeps created.main, gets ModRevision = rev, Version + 1."""
    put(store, b"a", b"1")
    put(store, b"b")
    put(store, b"a", b"2")
    put(store, b"a", b"3")
    kv = get_one(store, b"a")
    assert (kv.value, kv.create_revision, kv.mod_revision, kv.version) == (b"3", 2, 5, 3)


def test_etcd_key_reports_its_lease(store):
    """etcd stores the put's lease id in KeyValue.Lease."""
    grant(store, 7)
    put(store, b"a", lease=7)
    put(store, b"b")
    assert get_one(store, b"a").lease == 7
    assert get_one(store, b"b").lease == 0


def test_etcd_delete_then_put_starts_a_new_generation(store):
    """etcd: after a tombstone the key index opens an empty generation, so the
    next put is Version 1 with a new CreateRevision."""
    put(store, b"a", b"1")  # 2
    put(store, b"a", b"2")  # 3
    delete(store, b"a")  # 4
    assert get_one(store, b"a") is None
    put(store, b"a", b"3")  # 5
    kv = get_one(store, b"a")
    assert (kv.create_revision, kv.mod_revision, kv.version, kv.value) == (5, 5, 1, b"3")
    old = get_one(store, b"a", revision=3)
    assert (old.create_revision, old.version, old.value) == (2, 2, b"2")
    assert get_one(store, b"a", revision=4) is None


# ---- limit, more, count -----------------------------------------------------


def test_etcd_limit_truncates_and_sets_more(store):
    """etcd: if Limit > 0 and more kvs than Limit, truncate and set More."""
    five_keys(store)
    r = get(store, b"k", b"l", limit=2)
    assert keys(r) == [b"k1", b"k2"]
    assert r.more is True
    assert r.count == 5


def test_etcd_limit_not_exceeded_has_no_more(store):
    """etcd sets More only when kvs exceed the limit."""
    five_keys(store)
    for limit in (5, 6, 100):
        r = get(store, b"k", b"l", limit=limit)
        assert len(r.kvs) == 5 and r.more is False and r.count == 5


def test_etcd_limit_zero_means_no_limit(store):
    """etcd: Limit 0 fetches everything (rangeKeys: limit <= 0 -> all)."""
    five_keys(store)
    r = get(store, b"k", b"l", limit=0)
    assert len(r.kvs) == 5 and r.more is False


def test_etcd_count_is_the_number_of_keys_in_range_before_limit(store):
    """etcd: RangeResponse.Count = len(revpairs), independent of Limit."""
    five_keys(store)
    put(store, b"other")
    r = get(store, b"k3", b"\x00", limit=1)
    assert keys(r) == [b"k3"]
    assert r.count == 4  # k3 k4 k5 other


def test_etcd_count_is_taken_before_min_max_filters(store):
    """etcd prunes min/max mod/create revisions after rangeKeys computed Count."""
    five_keys(store)  # revisions 2..6
    r = get(store, b"k", b"l", min_mod_revision=5)
    assert keys(r) == [b"k4", b"k5"]
    assert r.count == 5
    r = get(store, b"k", b"l", max_create_revision=3, limit=1)
    assert keys(r) == [b"k1"]
    assert (r.count, r.more) == (5, True)
    for options in ({"max_mod_revision": 2}, {"min_create_revision": 6}):
        r = get(store, b"k", b"l", **options)
        assert (len(r.kvs), r.count) == (1, 5)


def test_etcd_more_is_computed_after_filters(store):
    """etcd compares len(kvs) with Limit after pruning."""
    five_keys(store)
    r = get(store, b"k", b"l", min_mod_revision=5, limit=2)
    assert keys(r) == [b"k4", b"k5"]
    assert r.more is False


def test_etcd_count_only_returns_the_count_and_no_kvs(store):
    """etcd: RangeOptions.Count returns Count and no KVs."""
    five_keys(store)
    r = get(store, b"k", b"l", count_only=True)
    assert (r.kvs, r.count, r.more, r.revision) == ([], 5, False, 6)
    r = get(store, b"k", b"l", count_only=True, limit=2, min_mod_revision=6)
    assert (r.kvs, r.count, r.more) == ([], 5, False)


def test_etcd_count_only_at_a_past_revision(store):
    """count_only counts the keys at the requested revision; the header is still
    the current revision (rangeKeys returns Rev: curRev with Count)."""
    five_keys(store)
    delete(store, b"k1")
    r = get(store, b"k", b"l", count_only=True, revision=3)
    assert (r.count, r.revision) == (2, 7)


def test_etcd_count_of_a_missing_key_is_zero(store):
    put(store, b"a")
    r = get(store, b"b")
    assert (r.kvs, r.count, r.more) == ([], 0, False)


# ---- sorting ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "ascending"),
    [
        (SortTarget.KEY, [b"a", b"b", b"c"]),
        (SortTarget.CREATE, [b"c", b"a", b"b"]),
        (SortTarget.MOD, [b"b", b"a", b"c"]),
        (SortTarget.VERSION, [b"b", b"c", b"a"]),
        (SortTarget.VALUE, [b"a", b"c", b"b"]),
    ],
)
def test_etcd_sorts_by_each_target_both_ways(target, ascending):
    """etcd sorts with kvSortBy{Key,Create,Mod,Version,Value}; DESCEND is sort.Reverse."""
    s = ordered_store()
    assert keys(get(s, b"a", b"\x00", sort_target=target, sort_order=ASC)) == ascending
    assert keys(get(s, b"a", b"\x00", sort_target=target, sort_order=DESC)) == ascending[::-1]


@pytest.mark.parametrize(
    ("target", "ascending"),
    [
        (SortTarget.CREATE, [b"c", b"a", b"b"]),
        (SortTarget.MOD, [b"b", b"a", b"c"]),
        (SortTarget.VERSION, [b"b", b"c", b"a"]),
        (SortTarget.VALUE, [b"a", b"c", b"b"]),
    ],
)
def test_etcd_target_other_than_key_with_order_none_sorts_ascending(target, ascending):
    """etcd: "sort ASCEND by default only when target is not 'KEY'" (apply.go)."""
    s = ordered_store()
    assert keys(get(s, b"a", b"\x00", sort_target=target, sort_order=NONE)) == ascending


def test_etcd_key_target_with_order_none_is_key_order(store):
    """etcd returns keys in ascending key order when nothing asks for a sort."""
    for name in (b"c", b"a", b"b"):
        put(store, name)
    assert keys(get(store, b"a", b"\x00")) == [b"a", b"b", b"c"]


def test_etcd_sort_ties_keep_key_order(store):
    """etcd's sort.Sort of a handful of kvs (at most 6: a plain insertion sort in
    every Go release) keeps equal kvs in key order, for ASCEND and for
    sort.Reverse (DESCEND) alike."""
    for name in (b"a", b"b", b"c", b"d"):
        put(store, name, b"same")
    put(store, b"c", b"same")  # c is the only version-2 key
    r = get(store, b"a", b"\x00", sort_target=SortTarget.VERSION, sort_order=ASC)
    assert keys(r) == [b"a", b"b", b"d", b"c"]
    r = get(store, b"a", b"\x00", sort_target=SortTarget.VERSION, sort_order=DESC)
    assert keys(r) == [b"c", b"a", b"b", b"d"]
    r = get(store, b"a", b"\x00", sort_target=SortTarget.VALUE, sort_order=DESC)
    assert keys(r) == [b"a", b"b", b"c", b"d"]


def test_etcd_sorts_before_applying_the_limit():
    """etcd fetches everything when SortOrder is set, sorts, then truncates."""
    s = ordered_store()
    r = get(s, b"a", b"\x00", sort_target=SortTarget.KEY, sort_order=DESC, limit=1)
    assert (keys(r), r.more, r.count) == ([b"c"], True, 3)
    r = get(s, b"a", b"\x00", sort_target=SortTarget.MOD, sort_order=DESC, limit=2)
    assert (keys(r), r.more) == ([b"c", b"a"], True)


def test_etcd_sort_target_with_order_none_and_limit_sorts_only_the_first_limit_plus_one_keys():
    """etcd apply.go Range: the "fetch everything" branch (limit = 0) is taken only
    when r.SortOrder != NONE or a min/max filter is set; otherwise it fetches
    limit+1 kvs in key order, and only then defaults the order to ASCEND for a
    non-KEY target. Keys a(create 3) b(create 4) c(create 2), limit 1 ->
    etcd fetches [a, b], sorts them by create -> [a]."""
    s = ordered_store()
    r = get(s, b"a", b"\x00", sort_target=SortTarget.CREATE, sort_order=NONE, limit=1)
    assert (keys(r), r.more, r.count) == ([b"a"], True, 3)


# ---- keys_only and filters --------------------------------------------------


def test_etcd_keys_only_drops_values_but_keeps_metadata(store):
    """etcd: KeysOnly sets Value = nil on each kv after sorting."""
    grant(store, 5)
    put(store, b"a", b"va", lease=5)
    put(store, b"b", b"vb")
    r = get(store, b"a", b"\x00", keys_only=True)
    assert [(kv.key, kv.value) for kv in r.kvs] == [(b"a", b""), (b"b", b"")]
    a = r.kvs[0]
    assert (a.create_revision, a.mod_revision, a.version, a.lease) == (2, 2, 1, 5)
    # the stored value is untouched
    assert get_one(store, b"a").value == b"va"


def test_etcd_keys_only_still_sorts_by_value(store):
    """etcd blanks values only after sorting by them."""
    put(store, b"a", b"2")
    put(store, b"b", b"1")
    r = get(store, b"a", b"\x00", keys_only=True, sort_target=SortTarget.VALUE, sort_order=ASC)
    assert keys(r) == [b"b", b"a"]


def test_etcd_min_and_max_mod_revision_filters_are_inclusive(store):
    """etcd prunes ModRevision < MinModRevision and > MaxModRevision."""
    five_keys(store)  # k1@2 .. k5@6
    assert keys(get(store, b"k", b"l", min_mod_revision=4)) == [b"k3", b"k4", b"k5"]
    assert keys(get(store, b"k", b"l", max_mod_revision=3)) == [b"k1", b"k2"]
    assert keys(get(store, b"k", b"l", min_mod_revision=3, max_mod_revision=4)) == [b"k2", b"k3"]


def test_etcd_min_and_max_create_revision_filters_are_inclusive(store):
    """etcd prunes CreateRevision < MinCreateRevision and > MaxCreateRevision."""
    five_keys(store)  # created 2..6
    put(store, b"k1", b"again")  # mod 7, create still 2
    assert keys(get(store, b"k", b"l", min_create_revision=5)) == [b"k4", b"k5"]
    assert keys(get(store, b"k", b"l", max_create_revision=2)) == [b"k1"]
    r = get(store, b"k", b"l", min_create_revision=3, max_create_revision=4)
    assert keys(r) == [b"k2", b"k3"]
    assert keys(get(store, b"k", b"l", min_mod_revision=7)) == [b"k1"]


def test_etcd_zero_filters_are_ignored(store):
    """etcd: a 0 min/max revision means no filter."""
    five_keys(store)
    r = get(store, b"k", b"l", min_mod_revision=0, max_mod_revision=0,
            min_create_revision=0, max_create_revision=0)
    assert len(r.kvs) == 5


# ---- past revisions ---------------------------------------------------------


def test_etcd_reads_the_state_at_a_past_revision(store):
    """etcd: RangeOptions.Rev reads the key index at that revision."""
    put(store, b"a", b"1")  # 2
    put(store, b"b", b"1")  # 3
    put(store, b"a", b"2")  # 4
    delete(store, b"b")  # 5
    put(store, b"c", b"1")  # 6
    r = get(store, b"a", b"\x00", revision=3)
    assert [(kv.key, kv.value, kv.version) for kv in r.kvs] == [(b"a", b"1", 1), (b"b", b"1", 1)]
    assert r.count == 2
    r = get(store, b"a", b"\x00", revision=5)
    assert [(kv.key, kv.value, kv.version) for kv in r.kvs] == [(b"a", b"2", 2)]
    assert keys(get(store, b"a", b"\x00", revision=1)) == []
    assert keys(get(store, b"a", b"\x00", revision=6)) == [b"a", b"c"]


def test_etcd_range_header_revision_is_the_current_revision_even_in_the_past(store):
    """etcd: RangeResult.Rev is curRev, not the requested revision."""
    put(store, b"a")
    put(store, b"a")
    put(store, b"a")
    assert get(store, b"a", revision=2).revision == 4
    assert get(store, b"a", revision=2).kvs[0].mod_revision == 2


def test_etcd_revision_zero_or_negative_reads_the_current_revision(store):
    """etcd rangeKeys: rev <= 0 means curRev."""
    put(store, b"a", b"1")
    put(store, b"a", b"2")
    assert get_one(store, b"a", revision=0).value == b"2"
    assert get_one(store, b"a", revision=-1).value == b"2"


def test_etcd_reading_the_current_revision_explicitly_works(store):
    put(store, b"a")
    assert get_one(store, b"a", revision=2).mod_revision == 2


def test_etcd_future_revision_fails(store):
    """etcd rangeKeys: rev > curRev -> ErrFutureRev."""
    put(store, b"a")
    with pytest.raises(FutureRevision) as e:
        get(store, b"a", revision=3)
    assert str(e.value) == "etcdserver: mvcc: required revision is a future revision"
    assert e.value.grpc_code == "OUT_OF_RANGE"


def test_etcd_compacted_revision_fails(store):
    """etcd rangeKeys: rev < compactMainRev -> ErrCompacted; the compaction
    revision itself is still readable."""
    for value in (b"1", b"2", b"3"):
        put(store, b"a", value)  # 2, 3, 4
    compact(store, 3)
    with pytest.raises(Compacted) as e:
        get(store, b"a", revision=2)
    assert str(e.value) == "etcdserver: mvcc: required revision has been compacted"
    assert e.value.grpc_code == "OUT_OF_RANGE"
    assert get_one(store, b"a", revision=3).value == b"2"


def test_etcd_range_on_an_empty_key_fails(store):
    """etcd checkRangeRequest: empty key -> "etcdserver: key is not provided"."""
    with pytest.raises(EmptyKey, match="^etcdserver: key is not provided$"):
        store.range(RangeRequest(b""))


def test_etcd_range_through_apply(store):
    """apply() dispatches each request type like etcd's applierV3backend.Apply."""
    store.apply(PutRequest(b"a", b"1"))
    r = store.apply(RangeRequest(b"a"))
    assert r.kvs[0].value == b"1"
    store.apply(DeleteRangeRequest(b"a"))
    assert store.apply(RangeRequest(b"a")).kvs == []
    with pytest.raises(TypeError):
        store.apply(object())


# ---- a range read in steps ---------------------------------------------------------------


def _read_in_steps(s: KVStore, request: RangeRequest, step_keys: int, between=lambda: None):
    reader = s.range_reader(request, step_keys=step_keys)
    while not reader.step():
        between()
    return reader.finish()


@pytest.mark.parametrize("request_args", [
    dict(key=b"k", range_end=b"l"),
    dict(key=b"k", range_end=b"l", limit=7),
    dict(key=b"k", range_end=b"l", sort_order=SortOrder.DESCEND, sort_target=SortTarget.MOD, limit=5),
    dict(key=b"k", range_end=b"l", count_only=True),
    dict(key=b"k", range_end=b"l", keys_only=True, min_mod_revision=20),
    dict(key=b"k10", range_end=b"\x00"),
    dict(key=b"k10"),
])
def test_a_read_in_steps_is_the_read_at_once_whatever_is_written_meanwhile(request_args):
    s = KVStore()
    for i in range(60):
        s.put(PutRequest(b"k%02d" % (i % 40), b"v%d" % i))
    request = RangeRequest(**request_args)
    at_once = s.range(request)
    counter = iter(range(1000))

    def write_meanwhile():
        i = next(counter)
        s.put(PutRequest(b"k%02d" % (i % 45), b"new"))
        s.delete_range(DeleteRangeRequest(b"k%02d" % ((i + 7) % 40)))

    assert _read_in_steps(s, request, step_keys=3, between=write_meanwhile) == at_once


def test_a_read_in_steps_is_refused_when_compaction_passes_it():
    s = KVStore()
    for i in range(20):
        s.put(PutRequest(b"k%02d" % i, b"v"))
    reader = s.range_reader(RangeRequest(b"k", b"l", revision=10), step_keys=2)
    assert not reader.step()
    s.compact(CompactionRequest(revision=15))
    with pytest.raises(Compacted):
        reader.step()
