"""The backend quota: the store's size model, the NOSPACE alarm's effect on
what is applied, and etcd's pre-proposal check (``over_quota``)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mvcc_helpers import compact, delete, get, grant, new_store, put, txn

from raftkv.errors import NoSpace
from raftkv.mvcc import DeleteRangeRequest, KVStore, LeaseRevokeRequest, PutRequest, RangeRequest, TxnRequest
from raftkv.mvcc.quota import DEFAULT_QUOTA_BACKEND_BYTES, KV_OVERHEAD, LEASE_OVERHEAD, version_cost
from raftkv.mvcc.requests import AlarmAction, AlarmMember, AlarmRequest, AlarmType, LeaseGrantRequest

NOSPACE_ON = AlarmRequest(AlarmAction.ACTIVATE, 1, AlarmType.NOSPACE)


def recomputed_in_use(store: KVStore) -> int:
    state = store.snapshot()
    versions = sum(version_cost(kv) for _, kept in state["keys"] for kv in kept)
    return versions + LEASE_OVERHEAD * len(state["leases"])


def test_a_put_costs_its_key_value_and_etcds_overhead():
    s = new_store()
    assert s.size == s.size_in_use == 0
    put(s, b"key", b"value")
    assert s.size_in_use == KV_OVERHEAD + 3 + 5
    put(s, b"key", b"v2")  # a second version is kept until compaction
    assert s.size_in_use == 2 * KV_OVERHEAD + 2 * 3 + 5 + 2


def test_compaction_frees_space_in_use_and_defragment_returns_it():
    s = new_store()
    for i in range(10):
        put(s, b"k", b"x" * 100)
    delete(s, b"k")
    grown = s.size
    compact(s, s.revision)
    assert s.size_in_use == 0
    assert s.size == grown  # like a database file, it keeps its size
    s.defragment()
    assert s.size == 0


def test_a_live_key_written_before_the_compaction_is_still_counted():
    s = new_store()
    put(s, b"old", b"value")
    for i in range(5):
        put(s, b"other", b"%d" % i)
    compact(s, s.revision)
    assert s.size_in_use == version_cost(get(s, b"old").kvs[0]) + version_cost(get(s, b"other").kvs[0])


def test_leases_count_while_granted():
    s = new_store()
    grant(s, 5)
    assert s.size_in_use == LEASE_OVERHEAD
    s.lease_revoke(LeaseRevokeRequest(5))
    assert s.size_in_use == 0


def test_over_quota_is_etcds_check_of_size_plus_cost():
    s = new_store(quota_backend_bytes=1000)
    put(s, b"a", b"x" * 400)  # 657 bytes
    fits = PutRequest(b"b", b"x" * (1000 - 657 - KV_OVERHEAD - 2))  # 657 + 342 = 999 < 1000
    assert not s.over_quota(fits)
    assert s.over_quota(PutRequest(b"b", b"x" * (1000 - 657 - KV_OVERHEAD - 1)))
    # a txn costs its larger branch; reads and deletes are never checked
    big = PutRequest(b"c", b"x" * 500)
    assert s.over_quota(TxnRequest([], [], [big]))
    assert s.over_quota(LeaseGrantRequest(ttl=10, id=1)) is False
    assert not s.over_quota(DeleteRangeRequest(b"a"))
    s.defragment()
    put(s, b"b", b"x" * 400)  # past the quota now (no check on a direct apply)
    assert s.size >= 1000
    assert not s.over_quota(TxnRequest([], [RangeRequest(b"a")], []))  # adds nothing: etcd lets it through
    assert s.over_quota(TxnRequest([], [PutRequest(b"a")], []))
    assert not s.over_quota(RangeRequest(b"a"))


def test_quota_zero_is_etcds_default_and_negative_disables_it():
    assert not new_store().over_quota(PutRequest(b"k", b"x" * (DEFAULT_QUOTA_BACKEND_BYTES - 300)))
    assert new_store().over_quota(PutRequest(b"k", b"x" * DEFAULT_QUOTA_BACKEND_BYTES))
    assert not new_store(quota_backend_bytes=-1).over_quota(PutRequest(b"k", b"x" * DEFAULT_QUOTA_BACKEND_BYTES))


def test_while_nospace_is_raised_writes_that_grow_are_refused():
    s = new_store()
    put(s, b"a", b"1")
    grant(s, 7)
    assert s.apply(NOSPACE_ON).alarms == [AlarmMember(1, AlarmType.NOSPACE)]
    revision = s.revision
    with pytest.raises(NoSpace):
        put(s, b"a", b"2")
    with pytest.raises(NoSpace):
        txn(s, success=[PutRequest(b"b", b"1")])
    with pytest.raises(NoSpace):
        grant(s, 8)
    assert s.revision == revision
    # what frees space goes on
    assert txn(s, success=[RangeRequest(b"a")]).succeeded
    assert get(s, b"a").kvs[0].value == b"1"
    assert delete(s, b"a").deleted == 1
    s.lease_revoke(LeaseRevokeRequest(7))
    compact(s, s.revision)
    s.apply(AlarmRequest(AlarmAction.DEACTIVATE, 1, AlarmType.NOSPACE))
    put(s, b"a", b"3")


def test_alarms_and_size_survive_snapshot_and_restore():
    s = new_store()
    put(s, b"a", b"1")
    put(s, b"a", b"2")
    s.apply(NOSPACE_ON)
    copy = new_store()
    copy.restore(s.snapshot())
    assert copy.alarms.raised() == [AlarmMember(1, AlarmType.NOSPACE)]
    assert copy.size_in_use == s.size_in_use
    with pytest.raises(NoSpace):
        put(copy, b"b")


operations = st.lists(
    st.tuples(st.sampled_from(["put", "delete", "compact", "grant", "revoke", "txn"]),
              st.sampled_from([b"a", b"b", b"c"]), st.binary(max_size=20)),
    max_size=40)


@settings(max_examples=200, deadline=None)
@given(operations)
def test_size_in_use_always_equals_what_the_store_keeps(ops):
    s = new_store()
    for op, key, value in ops:
        if op == "put":
            put(s, key, value)
        elif op == "delete":
            delete(s, key)
        elif op == "compact" and s.revision > max(s.compact_revision, 0):
            compact(s, s.revision)
        elif op == "grant" and 1 + len(value) not in s.lessor:
            grant(s, 1 + len(value))
            put(s, key, value, lease=1 + len(value))
        elif op == "revoke" and s.lessor.leases():
            s.lease_revoke(LeaseRevokeRequest(s.lessor.leases()[0].id))
        elif op == "txn":
            txn(s, success=[PutRequest(key, value), DeleteRangeRequest(key + b"x")])
        assert s.size_in_use == recomputed_in_use(s)
        assert s.size >= s.size_in_use
