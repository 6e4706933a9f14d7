"""Leases as replicated state: grant, revoke, attached keys.

Reference: etcd 3.4 lease/lessor.go (Grant, Revoke, MaxLeaseTTL),
etcdserver/apply.go (LeaseGrant, LeaseRevoke: header from newHeader, i.e.
the current revision), etcdserver/server.go (minTTL), and
etcdserver/api/v3rpc/rpctypes/error.go for the messages.
"""

from __future__ import annotations

import pytest

from raftkv.errors import LeaseExists, LeaseNotFound, LeaseTTLTooLarge
from raftkv.mvcc import LeaseGrantRequest, LeaseGrantResponse, LeaseRevokeRequest, PutRequest
from raftkv.mvcc.lease import DEFAULT_MIN_LEASE_TTL, MAX_LEASE_TTL, Lessor

from mvcc_helpers import get, get_one, grant, history, new_store, put, revoke, txn


def test_etcd_grant_returns_the_id_and_ttl_and_makes_no_revision(store):
    put(store, b"x")
    r = grant(store, 42, ttl=30)
    assert isinstance(r, LeaseGrantResponse)
    assert (r.id, r.ttl, r.revision) == (42, 30, 2)
    assert store.revision == 2
    assert 42 in store.lessor


def test_etcd_default_min_lease_ttl_is_2():
    """etcd server.go: minTTL = ceil(1.5 election timeouts) = ceil(1.5 * 10 * 100ms) = 2s."""
    assert DEFAULT_MIN_LEASE_TTL == 2
    assert new_store().limits.min_lease_ttl == 2


@pytest.mark.parametrize(("asked", "granted"), [(-5, 2), (0, 2), (1, 2), (2, 2), (3, 3), (3600, 3600)])
def test_etcd_raises_small_ttls_to_the_minimum(store, asked, granted):
    """etcd Grant: if l.ttl < le.minLeaseTTL { l.ttl = le.minLeaseTTL }."""
    assert grant(store, 1, ttl=asked).ttl == granted
    assert store.lessor.get(1).ttl == granted


def test_etcd_min_lease_ttl_is_configurable():
    s = new_store(min_lease_ttl=10)
    assert grant(s, 1, ttl=3).ttl == 10
    assert grant(s, 2, ttl=11).ttl == 11


def test_etcd_rejects_a_ttl_above_max_lease_ttl(store):
    """etcd Grant: ttl > MaxLeaseTTL (9000000000) -> "etcdserver: too large lease TTL"."""
    assert MAX_LEASE_TTL == 9_000_000_000
    with pytest.raises(LeaseTTLTooLarge) as e:
        grant(store, 1, ttl=9_000_000_001)
    assert str(e.value) == "etcdserver: too large lease TTL"
    assert e.value.grpc_code == "OUT_OF_RANGE"
    assert 1 not in store.lessor
    assert grant(store, 1, ttl=9_000_000_000).ttl == 9_000_000_000


def test_etcd_rejects_granting_an_existing_lease(store):
    """etcd Grant: id already in leaseMap -> "etcdserver: lease already exists"."""
    grant(store, 5, ttl=10)
    with pytest.raises(LeaseExists) as e:
        grant(store, 5, ttl=20)
    assert str(e.value) == "etcdserver: lease already exists"
    assert e.value.grpc_code == "FAILED_PRECONDITION"
    assert store.lessor.get(5).ttl == 10


def test_etcd_checks_the_ttl_before_the_id(store):
    """etcd Grant checks ttl > MaxLeaseTTL before looking the id up."""
    grant(store, 5)
    with pytest.raises(LeaseTTLTooLarge):
        grant(store, 5, ttl=MAX_LEASE_TTL + 1)


def test_etcd_rejects_granting_lease_id_zero(store):
    """etcd lessor.go Grant: if id == NoLease { return nil, ErrLeaseNotFound }.
    (etcd's server picks a random id for 0 before proposing, as raftkv's client
    does, so this only matters to an apply of a raw LeaseGrantRequest.)"""
    with pytest.raises(LeaseNotFound):
        grant(store, 0)


def test_etcd_revoke_deletes_every_attached_key_in_one_revision(store):
    """etcd Revoke deletes the lease's keys in one write txn (le.rd())."""
    grant(store, 1)
    put(store, b"k2", lease=1)  # 2
    put(store, b"other")  # 3
    put(store, b"k1", lease=1)  # 4
    txn(store, success=[PutRequest(b"k3", b"v", lease=1)])  # 5
    r = revoke(store, 1)
    assert r.revision == 6 == store.revision
    assert [kv.key for kv in get(store, b"\x00", b"\x00").kvs] == [b"other"]
    assert history(store, 6) == [(6, [(b"k1", 0), (b"k2", 0), (b"k3", 0)])]


def test_etcd_revoke_deletes_keys_in_sorted_order(store):
    """etcd Revoke: "sort keys so deletes are in same order among all members"."""
    grant(store, 1)
    for name in (b"zz", b"b", b"\x00x", b"ba", b"a\xff"):
        put(store, name, lease=1)
    revoke(store, 1)
    (rev, changes), = history(store, store.revision)
    assert [key for key, _ in changes] == [b"\x00x", b"a\xff", b"b", b"ba", b"zz"]
    assert store.key_count == 0


def test_etcd_revoked_keys_remain_readable_in_the_past(store):
    grant(store, 1)
    put(store, b"a", b"1", lease=1)
    revoke(store, 1)
    assert get_one(store, b"a") is None
    kv = get_one(store, b"a", revision=2)
    assert (kv.value, kv.lease) == (b"1", 1)


def test_etcd_revoke_of_a_lease_without_keys_makes_no_revision(store):
    """A revoke txn with no deletes has no changes, so End() keeps the revision."""
    put(store, b"a")
    grant(store, 1)
    r = revoke(store, 1)
    assert r.revision == 2 == store.revision
    assert 1 not in store.lessor


def test_etcd_revoke_leaves_keys_of_other_leases_alone(store):
    grant(store, 1)
    grant(store, 2)
    put(store, b"a", lease=1)
    put(store, b"b", lease=2)
    put(store, b"c")
    revoke(store, 1)
    assert [kv.key for kv in get(store, b"\x00", b"\x00").kvs] == [b"b", b"c"]
    assert store.lessor.get(2).keys == {b"b"}


def test_etcd_revoke_of_an_unknown_lease_fails(store):
    """etcd Revoke: l == nil -> ErrLeaseNotFound ("etcdserver: requested lease not found")."""
    with pytest.raises(LeaseNotFound) as e:
        revoke(store, 77)
    assert str(e.value) == "etcdserver: requested lease not found"
    assert e.value.grpc_code == "NOT_FOUND"
    assert store.revision == 1


def test_etcd_a_revoked_lease_is_gone(store):
    grant(store, 1)
    revoke(store, 1)
    assert 1 not in store.lessor
    with pytest.raises(LeaseNotFound):
        revoke(store, 1)
    with pytest.raises(LeaseNotFound):
        put(store, b"a", lease=1)
    assert grant(store, 1, ttl=9).ttl == 9  # the id may be granted again


def test_leases_through_apply(store):
    r = store.apply(LeaseGrantRequest(ttl=5, id=3))
    assert (r.id, r.ttl) == (3, 5)
    store.apply(PutRequest(b"a", b"v", lease=3))
    r = store.apply(LeaseRevokeRequest(3))
    assert r.revision == 3
    assert get_one(store, b"a") is None


# ---- Lessor on its own ------------------------------------------------------


def test_lessor_tracks_leases_and_keys():
    lessor = Lessor()
    assert len(lessor) == 0
    lessor.grant(1, 10)
    lessor.grant(2, 1)
    assert len(lessor) == 2 and 1 in lessor and 3 not in lessor
    assert sorted(l.id for l in lessor.leases()) == [1, 2]
    assert lessor.get(2).ttl == DEFAULT_MIN_LEASE_TTL
    lessor.attach(1, b"a")
    lessor.attach(1, b"b")
    lessor.detach(1, b"a")
    lessor.detach(99, b"a")  # unknown lease: nothing to detach
    assert lessor.get(1).keys == {b"b"}
    removed = lessor.remove(1)
    assert removed.keys == {b"b"} and 1 not in lessor
    with pytest.raises(LeaseNotFound):
        lessor.get(1)
    with pytest.raises(LeaseNotFound):
        lessor.remove(1)


def test_lessor_min_ttl():
    assert Lessor(min_ttl=7).grant(1, 3).ttl == 7
