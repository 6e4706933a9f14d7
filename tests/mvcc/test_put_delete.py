"""Put and DeleteRange: flags, leases, errors, request size, prev_kv.

Reference: etcd 3.4 etcdserver/api/v3rpc/key.go (checkPutRequest,
checkDeleteRequest), etcdserver/apply.go (Put, DeleteRange),
mvcc/kvstore_txn.go (put, delete), etcdserver/v3_server.go
(processInternalRaftRequestOnce: the --max-request-bytes check).
"""

from __future__ import annotations

import pytest

from raftkv.errors import (
    EmptyKey,
    KeyNotFound,
    LeaseNotFound,
    LeaseProvided,
    RequestTooLarge,
    ValueProvided,
)
from raftkv.mvcc import DeleteRangeRequest, PutRequest, RangeRequest
from raftkv.mvcc.store import DEFAULT_MAX_REQUEST_BYTES

from mvcc_helpers import delete, get, get_one, grant, keys, new_store, put, revoke, txn

MiB = 1024 * 1024


# ---- prev_kv ----------------------------------------------------------------


def test_etcd_put_prev_kv_returns_the_overwritten_version(store):
    """etcd Put with PrevKv returns the kv read before the write."""
    put(store, b"a", b"old")
    r = put(store, b"a", b"new", prev_kv=True)
    assert r.revision == 3
    p = r.prev_kv
    assert (p.key, p.value, p.create_revision, p.mod_revision, p.version) == (b"a", b"old", 2, 2, 1)


def test_etcd_put_prev_kv_is_absent_for_a_new_or_deleted_key(store):
    """etcd leaves PrevKv nil when the range before the write found nothing."""
    assert put(store, b"a", prev_kv=True).prev_kv is None
    delete(store, b"a")
    assert put(store, b"a", prev_kv=True).prev_kv is None


def test_etcd_put_without_prev_kv_returns_none(store):
    put(store, b"a")
    assert put(store, b"a").prev_kv is None


# ---- ignore_value / ignore_lease --------------------------------------------


def test_etcd_ignore_value_keeps_the_value_and_makes_a_new_version(store):
    """etcd Put with IgnoreValue writes rr.KVs[0].Value again, as a new revision."""
    grant(store, 9)
    put(store, b"a", b"keep")
    r = put(store, b"a", b"", lease=9, ignore_value=True)
    kv = get_one(store, b"a")
    assert (kv.value, kv.version, kv.mod_revision, kv.lease) == (b"keep", 2, r.revision, 9)


def test_etcd_ignore_lease_keeps_the_lease(store):
    """etcd Put with IgnoreLease reuses rr.KVs[0].Lease, so the key stays attached."""
    grant(store, 9)
    put(store, b"a", b"1", lease=9)
    put(store, b"a", b"2", ignore_lease=True)
    kv = get_one(store, b"a")
    assert (kv.value, kv.lease, kv.version) == (b"2", 9, 2)
    assert store.lessor.get(9).keys == {b"a"}
    revoke(store, 9)
    assert get_one(store, b"a") is None


def test_etcd_ignore_value_and_ignore_lease_together(store):
    grant(store, 9)
    put(store, b"a", b"1", lease=9)
    put(store, b"a", ignore_value=True, ignore_lease=True, value=b"")
    kv = get_one(store, b"a")
    assert (kv.value, kv.lease, kv.version) == (b"1", 9, 2)


@pytest.mark.parametrize("flag", ["ignore_value", "ignore_lease"])
def test_etcd_ignore_flags_need_an_existing_key(store, flag):
    """etcd: "ignore_{lease,value} flag expects previous key-value pair" ->
    ErrKeyNotFound "etcdserver: key not found"; nothing is written."""
    put(store, b"gone")
    delete(store, b"gone")
    for key in (b"missing", b"gone"):
        with pytest.raises(KeyNotFound) as e:
            store.put(PutRequest(key, b"", **{flag: True}))
        assert str(e.value) == "etcdserver: key not found"
        assert e.value.grpc_code == "INVALID_ARGUMENT"
    assert store.revision == 3
    assert get(store, b"a", b"\x00").kvs == []


def test_etcd_ignore_value_with_a_value_is_rejected(store):
    """etcd checkPutRequest: IgnoreValue && len(Value) != 0 -> ErrGRPCValueProvided."""
    put(store, b"a")
    with pytest.raises(ValueProvided) as e:
        put(store, b"a", b"x", ignore_value=True)
    assert str(e.value) == "etcdserver: value is provided"
    assert e.value.grpc_code == "INVALID_ARGUMENT"
    assert store.revision == 2


def test_etcd_ignore_lease_with_a_lease_is_rejected(store):
    """etcd checkPutRequest: IgnoreLease && Lease != 0 -> ErrGRPCLeaseProvided."""
    grant(store, 1)
    put(store, b"a")
    with pytest.raises(LeaseProvided) as e:
        put(store, b"a", lease=1, ignore_lease=True)
    assert str(e.value) == "etcdserver: lease is provided"
    assert store.revision == 2


def test_etcd_put_checks_the_lease_before_the_previous_key(store):
    """etcd apply.go Put (outside a txn) looks the lease up before reading the
    previous kv, so an unknown lease wins over a missing key."""
    with pytest.raises(LeaseNotFound):
        put(store, b"missing", b"", lease=42, ignore_value=True)


# ---- leases -----------------------------------------------------------------


def test_etcd_put_with_a_lease_attaches_the_key(store):
    """etcd put: le.Attach(leaseID, key)."""
    grant(store, 1)
    put(store, b"a", lease=1)
    put(store, b"b", lease=1)
    assert store.lessor.get(1).keys == {b"a", b"b"}


def test_etcd_overwrite_with_another_lease_moves_the_key(store):
    """etcd put: detach the old lease, attach the new one."""
    grant(store, 1)
    grant(store, 2)
    put(store, b"a", lease=1)
    put(store, b"a", lease=2)
    assert store.lessor.get(1).keys == set()
    assert store.lessor.get(2).keys == {b"a"}
    rev = store.revision
    revoke(store, 1)
    assert store.revision == rev  # nothing attached: no deletion, no revision
    assert get_one(store, b"a").lease == 2


def test_etcd_overwrite_without_a_lease_detaches_the_key(store):
    """etcd put with NoLease detaches the key from its old lease; revoking that
    lease then leaves the key alone."""
    grant(store, 1)
    put(store, b"a", b"1", lease=1)
    put(store, b"a", b"2")
    assert get_one(store, b"a").lease == 0
    assert store.lessor.get(1).keys == set()
    revoke(store, 1)
    assert get_one(store, b"a").value == b"2"


def test_etcd_delete_detaches_the_key_from_its_lease(store):
    """etcd delete: le.Detach(GetLease(key), key); a re-created key without a
    lease survives the revoke."""
    grant(store, 1)
    put(store, b"a", lease=1)
    delete(store, b"a")
    assert store.lessor.get(1).keys == set()
    put(store, b"a", b"new")
    revoke(store, 1)
    assert get_one(store, b"a").value == b"new"


def test_etcd_put_with_an_unknown_lease_fails_and_writes_nothing(store):
    """etcd Put: lessor.Lookup == nil -> lease.ErrLeaseNotFound, which the gRPC
    layer reports as "etcdserver: requested lease not found"."""
    with pytest.raises(LeaseNotFound) as e:
        put(store, b"a", lease=99)
    assert str(e.value) == "etcdserver: requested lease not found"
    assert e.value.grpc_code == "NOT_FOUND"
    assert store.revision == 1
    assert get_one(store, b"a") is None


def test_etcd_put_with_a_revoked_lease_fails(store):
    grant(store, 3)
    revoke(store, 3)
    with pytest.raises(LeaseNotFound):
        put(store, b"a", lease=3)


# ---- empty keys -------------------------------------------------------------


def test_etcd_put_with_an_empty_key_fails(store):
    """etcd checkPutRequest: len(Key) == 0 -> "etcdserver: key is not provided"."""
    with pytest.raises(EmptyKey) as e:
        put(store, b"", b"v")
    assert str(e.value) == "etcdserver: key is not provided"
    assert e.value.grpc_code == "INVALID_ARGUMENT"
    assert store.revision == 1


def test_etcd_delete_with_an_empty_key_fails(store):
    """etcd checkDeleteRequest: len(Key) == 0 -> ErrGRPCEmptyKey, even with a range end."""
    put(store, b"a")
    with pytest.raises(EmptyKey, match="^etcdserver: key is not provided$"):
        delete(store, b"", b"\x00")
    assert get_one(store, b"a") is not None


# ---- request size -----------------------------------------------------------


def test_etcd_default_max_request_bytes_is_1_5_mib():
    """etcd embed/config.go: DefaultMaxRequestBytes = 1.5 * 1024 * 1024."""
    assert DEFAULT_MAX_REQUEST_BYTES == 1536 * 1024
    assert new_store().limits.max_request_bytes == 1536 * 1024


def test_etcd_put_above_max_request_bytes_is_too_large(store):
    """etcd: a raft request whose encoding exceeds MaxRequestBytes fails with
    "etcdserver: request is too large" and is not applied."""
    with pytest.raises(RequestTooLarge) as e:
        put(store, b"a", b"x" * (DEFAULT_MAX_REQUEST_BYTES + 1))
    assert str(e.value) == "etcdserver: request is too large"
    assert e.value.grpc_code == "INVALID_ARGUMENT"
    assert store.revision == 1


def test_etcd_put_just_below_max_request_bytes_is_accepted(store):
    """A value 1 KiB under the limit encodes well under it."""
    put(store, b"a", b"x" * (DEFAULT_MAX_REQUEST_BYTES - 1024))
    assert len(get_one(store, b"a").value) == DEFAULT_MAX_REQUEST_BYTES - 1024


def test_etcd_max_request_bytes_is_configurable():
    """etcd --max-request-bytes sets the limit (StoreLimits.max_request_bytes)."""
    s = new_store(max_request_bytes=1024)
    put(s, b"a", b"x" * 512)
    with pytest.raises(RequestTooLarge):
        put(s, b"b", b"x" * 1024)
    with pytest.raises(RequestTooLarge):
        delete(s, b"k" * 2048)
    with pytest.raises(RequestTooLarge):
        txn(s, success=[PutRequest(b"c%d" % i, b"x" * 100) for i in range(12)])
    assert s.revision == 2
    big = new_store(max_request_bytes=3 * MiB)
    put(big, b"a", b"x" * (2 * MiB))
    assert big.revision == 2


def test_etcd_a_txn_is_measured_as_a_whole():
    """etcd measures the whole InternalRaftRequest: many small puts can exceed it."""
    s = new_store(max_request_bytes=4096)
    ops = [PutRequest(b"k%d" % i, b"x" * 200) for i in range(30)]
    with pytest.raises(RequestTooLarge):
        txn(s, success=ops)
    txn(s, success=ops[:5])
    assert s.revision == 2


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (PutRequest(b"", b"x" * (16 * 100 * 1024)), "etcdserver: key is not provided"),
        (PutRequest(b"a", b"x" * (16 * 100 * 1024), ignore_value=True), "etcdserver: value is provided"),
    ],
    ids=["empty-key", "ignore-value-with-value"],
)
def test_etcd_validates_a_request_before_measuring_its_size(store, request_, message):
    """etcd kvServer.Put runs checkPutRequest (key.go:62) before s.kv.Put, and the
    MaxRequestBytes check happens later, in processInternalRaftRequestOnce
    (v3_server.go:661). A 1.6 MiB put (under gRPC's 1.5 MiB + 512 KiB receive
    limit) with an empty key gets "key is not provided", not "request is too large"."""
    with pytest.raises(Exception) as e:
        store.put(request_)
    assert str(e.value) == message


def test_etcd_does_not_apply_max_request_bytes_to_a_range(store):
    """etcd EtcdServer.Range calls applyV3Base.Range directly (no raft proposal),
    so the only limit is gRPC's MaxRecvMsgSize = MaxRequestBytes + 512 KiB
    (v3rpc/grpc.go:53). A 1.6 MiB range key is served (and finds nothing)."""
    r = store.range(RangeRequest(b"k" * (16 * 100 * 1024)))
    assert (r.kvs, r.count) == ([], 0)


# ---- delete_range -----------------------------------------------------------


def test_etcd_delete_single_key_only(store):
    """etcd: an empty range end deletes exactly the key, not keys it prefixes."""
    put(store, b"a")
    put(store, b"ab")
    d = delete(store, b"a")
    assert (d.deleted, d.revision) == (1, 4)
    assert keys(get(store, b"a", b"\x00")) == [b"ab"]


def test_etcd_delete_range_counts_deleted_keys(store):
    """etcd DeleteRangeResponse.Deleted is the number of keys deleted."""
    for name in (b"a", b"b", b"c", b"d"):
        put(store, name)
    d = delete(store, b"b", b"d")
    assert (d.deleted, d.revision, d.prev_kvs) == (2, 6, [])
    assert keys(get(store, b"a", b"\x00")) == [b"a", b"d"]


def test_etcd_delete_from_key_deletes_everything_from_it(store):
    """etcd: range_end "\\0" deletes every key >= key."""
    for name in (b"a", b"b", b"c"):
        put(store, name)
    assert delete(store, b"b", b"\x00").deleted == 2
    assert keys(get(store, b"\x00", b"\x00")) == [b"a"]


def test_etcd_delete_prev_kv_returns_the_deleted_kvs_in_key_order(store):
    """etcd DeleteRange with PrevKv returns txn.Range(key, end) before deleting."""
    grant(store, 4)
    put(store, b"c", b"3")
    put(store, b"a", b"1", lease=4)
    put(store, b"b", b"2")
    put(store, b"a", b"1b", lease=4)
    d = delete(store, b"a", b"\x00", prev_kv=True)
    assert d.deleted == 3
    assert [(kv.key, kv.value, kv.version, kv.create_revision, kv.mod_revision, kv.lease)
            for kv in d.prev_kvs] == [
        (b"a", b"1b", 2, 3, 5, 4),
        (b"b", b"2", 1, 4, 4, 0),
        (b"c", b"3", 1, 2, 2, 0),
    ]


def test_etcd_delete_of_nothing_with_prev_kv_returns_nothing(store):
    put(store, b"a")
    d = delete(store, b"b", b"c", prev_kv=True)
    assert (d.deleted, d.prev_kvs, d.revision) == (0, [], 2)


def test_etcd_deleted_key_is_gone_now_but_visible_before(store):
    put(store, b"a", b"1")
    delete(store, b"a")
    assert get_one(store, b"a") is None
    assert get(store, b"a").count == 0
    assert get_one(store, b"a", revision=2).value == b"1"


def test_etcd_key_count_tracks_live_keys(store):
    for name in (b"a", b"b", b"c"):
        put(store, name)
    put(store, b"a")
    assert store.key_count == 3
    delete(store, b"a", b"c")
    assert store.key_count == 1
    store.delete_range(DeleteRangeRequest(b"c"))
    assert store.key_count == 0
