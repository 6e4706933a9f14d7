"""LeaseDeadlines: when leases run out, with the clock passed in (no sleeps).

Reference: etcd 3.4 lease/lessor.go (Lease.refresh, Lease.expired,
lessor.Renew, Promote, expireExists/findExpiredLeases,
defaultExpiredleaseRetryInterval) and etcdserver/v3_server.go
(LeaseTimeToLive: TTL = int64(Remaining().Seconds())).
"""

from __future__ import annotations

import pytest

from raftkv.mvcc.expiry import LeaseDeadlines


@pytest.fixture
def deadlines() -> LeaseDeadlines:
    return LeaseDeadlines()


def test_etcd_a_started_lease_runs_out_ttl_seconds_later(deadlines):
    """etcd refresh: expiry = now + ttl."""
    assert 1 not in deadlines
    deadlines.start(1, 10, now=100.0)
    assert 1 in deadlines
    assert deadlines.next_deadline() == 110.0
    assert deadlines.remaining(1, now=100.0) == 10
    assert deadlines.remaining(1, now=104.0) == 6


def test_etcd_lease_is_not_expired_before_its_deadline(deadlines):
    deadlines.start(1, 10, now=100.0)
    assert deadlines.expired(now=100.0) == []
    assert deadlines.expired(now=109.999) == []


def test_etcd_lease_is_expired_at_its_deadline(deadlines):
    """etcd Lease.expired(): Remaining() <= 0."""
    deadlines.start(1, 10, now=100.0)
    assert deadlines.expired(now=110.0) == [1]


def test_etcd_expired_leases_come_oldest_first(deadlines):
    deadlines.start(1, 30, now=0.0)
    deadlines.start(2, 10, now=0.0)
    deadlines.start(3, 20, now=0.0)
    deadlines.start(4, 99, now=0.0)
    assert deadlines.expired(now=50.0) == [2, 3, 1]


def test_remaining_of_an_unknown_lease_is_minus_1(deadlines):
    assert deadlines.remaining(5, now=0.0) == -1
    deadlines.start(5, 10, now=0.0)
    deadlines.remove(5)
    assert deadlines.remaining(5, now=0.0) == -1


def test_remaining_never_goes_below_zero_at_whole_seconds(deadlines):
    deadlines.start(1, 10, now=0.0)
    assert deadlines.remaining(1, now=10.0) == 0


def test_etcd_reports_remaining_whole_seconds_truncated(deadlines):
    """etcd v3_server.go:336 (and leasehttp/http.go:116): TTL is
    int64(le.Remaining().Seconds()); 9.5 s left is reported as 9 (that is why
    `etcdctl lease timetolive` shows 9s right after granting 10s)."""
    deadlines.start(1, 10, now=0.0)
    assert deadlines.remaining(1, now=0.5) == 9


def test_etcd_renew_restarts_the_full_ttl(deadlines):
    """etcd Renew: l.refresh(0) and returns l.ttl (the granted TTL)."""
    deadlines.start(1, 10, now=0.0)
    assert deadlines.renew(1, now=8.0) == 10
    assert deadlines.remaining(1, now=8.0) == 10
    assert deadlines.next_deadline() == 18.0
    assert deadlines.expired(now=10.0) == []  # the old deadline no longer counts
    assert deadlines.expired(now=18.0) == [1]


def test_start_again_replaces_the_ttl(deadlines):
    deadlines.start(1, 10, now=0.0)
    deadlines.start(1, 30, now=5.0)
    assert deadlines.renew(1, now=6.0) == 30
    assert deadlines.next_deadline() == 36.0


def test_a_removed_lease_never_expires(deadlines):
    """A revoked lease is forgotten: not expired, no deadline."""
    deadlines.start(1, 10, now=0.0)
    deadlines.start(2, 20, now=0.0)
    deadlines.remove(1)
    assert 1 not in deadlines
    assert deadlines.next_deadline() == 20.0
    assert deadlines.expired(now=100.0) == [2]
    deadlines.remove(2)
    deadlines.remove(2)  # removing twice is harmless
    assert deadlines.next_deadline() is None


def test_next_deadline_is_none_without_leases(deadlines):
    assert deadlines.next_deadline() is None


def test_next_deadline_is_the_earliest(deadlines):
    deadlines.start(1, 30, now=0.0)
    deadlines.start(2, 10, now=0.0)
    assert deadlines.next_deadline() == 10.0
    for now in (9.0, 18.0, 27.0):  # kept alive past lease 1's deadline
        assert deadlines.renew(2, now=now) == 10
    assert deadlines.next_deadline() == 30.0


def test_etcd_expired_lease_is_decided_again_until_removed(deadlines):
    """etcd expireExists re-registers an expired lease after a retry interval, so a
    revoke that was not applied is attempted again; once removed it stops."""
    deadlines.start(1, 10, now=0.0)
    assert deadlines.expired(now=10.0) == [1]
    assert deadlines.expired(now=10.0) == []  # not twice at the same instant
    assert 1 in deadlines
    retry = deadlines.next_deadline()
    assert retry is not None and retry > 10.0
    assert deadlines.expired(now=retry) == [1]
    deadlines.remove(1)
    assert deadlines.expired(now=retry + 100.0) == []


def test_etcd_retries_an_unrevoked_expired_lease_after_3_seconds(deadlines):
    """etcd lessor.go:61 defaultExpiredleaseRetryInterval = 3 * time.Second;
    expireExists (lessor.go:708): item.time = now.Add(expiredLeaseRetryInterval)."""
    deadlines.start(1, 10, now=0.0)
    assert deadlines.expired(now=10.0) == [1]
    assert deadlines.expired(now=12.0) == []
    assert deadlines.expired(now=13.0) == [1]


def test_etcd_new_leader_extends_every_lease_to_its_full_ttl(deadlines):
    """etcd Promote refreshes every lease's expiry from now (plus the election
    extension), so leases do not expire right after a leader change."""
    deadlines.start(1, 10, now=0.0)
    deadlines.start(2, 60, now=0.0)
    deadlines.extend_all(now=9.0)
    assert deadlines.remaining(1, now=9.0) == 10
    assert deadlines.remaining(2, now=9.0) == 60
    assert deadlines.expired(now=10.0) == []
    assert deadlines.next_deadline() == 19.0
    assert deadlines.expired(now=19.0) == [1]


def test_extend_all_skips_removed_leases(deadlines):
    deadlines.start(1, 10, now=0.0)
    deadlines.remove(1)
    deadlines.extend_all(now=5.0)
    assert 1 not in deadlines
    assert deadlines.next_deadline() is None


def test_etcd_renew_of_a_lease_past_its_deadline_fails(deadlines):
    """etcd's Renew answers ErrLeaseNotFound for a lease that has expired,
    even before its revoke is applied."""
    deadlines.start(1, 10, now=0.0)
    assert deadlines.renew(1, now=10.0) is None
    deadlines.start(2, 10, now=0.0)
    assert deadlines.expired(now=11.0) == [1, 2]
    assert deadlines.renew(2, now=11.5) is None  # offered for revoke: stays expired


def test_renewals_do_not_grow_the_deadline_heap():
    """A long lease renewed often (etcd clients renew every TTL/3) must not
    leave one stale deadline behind per renewal (it did: ~70 B each)."""
    import tracemalloc

    d = LeaseDeadlines()
    for lease_id in range(1, 11):
        d.start(lease_id, 3600, 0.0)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for step in range(1, 100_001):
            d.renew(1 + step % 10, step * 0.001)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 100_000, f"{grown} bytes kept after 100,000 renewals of 10 leases"
    assert d.expired(3599.0) == []
    assert sorted(d.expired(4000.0)) == list(range(1, 11))


def test_by_expiry_lists_the_soonest_first_and_unknown_ids_last():
    d = LeaseDeadlines()
    d.start(1, 3000, now=0.0)
    d.start(2, 60, now=0.0)
    d.start(3, 60, now=-1.0)  # one second sooner than lease 2
    d.start(4, 1000, now=0.0)
    assert d.by_expiry([1, 2, 3, 4, 99]) == [3, 2, 4, 1, 99]
    d.renew(3, now=30.0)  # now due at 90, after lease 2
    assert d.by_expiry([1, 2, 3, 4]) == [2, 3, 4, 1]
