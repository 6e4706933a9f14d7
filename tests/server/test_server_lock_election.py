"""v3lock's Lock and v3election's Election against a real ``raftkv serve``,
through their gRPC services and through etcdctl lock / elect (which run
etcd's client-side recipes over KV, Lease and Watch)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time

import grpc
import pytest

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv._proto.v3electionpb import v3election_pb2 as epb
from raftkv._proto.v3electionpb import v3election_pb2_grpc
from raftkv._proto.v3lockpb import v3lock_pb2 as lpb
from raftkv._proto.v3lockpb import v3lock_pb2_grpc

from server_helpers import ETCDCTL, ETCDCTL_MISSING, HAVE_ETCDCTL, serves, wait_until

needs_etcdctl = pytest.mark.skipif(not HAVE_ETCDCTL, reason=ETCDCTL_MISSING)


def grant(channel, ttl: int = 60) -> int:
    return rpc_pb2_grpc.LeaseStub(channel).LeaseGrant(rpc_pb2.LeaseGrantRequest(TTL=ttl), timeout=10).ID


def keys(channel, prefix: bytes) -> list[bytes]:
    end = prefix[:-1] + bytes([prefix[-1] + 1])
    response = rpc_pb2_grpc.KVStub(channel).Range(
        rpc_pb2.RangeRequest(key=prefix, range_end=end, keys_only=True), timeout=10)
    return [kv.key for kv in response.kvs]


def error_of(call) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value.code(), info.value.details()


class Background:
    """A call running on its own thread; its result or error when done."""

    def __init__(self, fn) -> None:
        self.result = self.error = None
        self.done = threading.Event()

        def run():
            try:
                self.result = fn()
            except BaseException as e:
                self.error = e
            finally:
                self.done.set()

        threading.Thread(target=run, daemon=True).start()


# ---- Lock ------------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_lock_waits_for_the_holder_in_creation_order(channel):
    locks = v3lock_pb2_grpc.LockStub(channel)
    first_lease, second_lease, third_lease = grant(channel), grant(channel), grant(channel)
    first = locks.Lock(lpb.LockRequest(name=b"lk", lease=first_lease), timeout=10)
    assert first.key == b"lk/" + format(first_lease, "x").encode()
    assert first.header.revision > 0 and first.header.member_id

    second = Background(lambda: locks.Lock(lpb.LockRequest(name=b"lk", lease=second_lease), timeout=30))
    wait_until(lambda: len(keys(channel, b"lk/")) == 2, timeout=10, what="second waiter queued")
    third = Background(lambda: locks.Lock(lpb.LockRequest(name=b"lk", lease=third_lease), timeout=30))
    wait_until(lambda: len(keys(channel, b"lk/")) == 3, timeout=10, what="third waiter queued")
    time.sleep(0.3)
    assert not second.done.is_set() and not third.done.is_set()

    unlocked = locks.Unlock(lpb.UnlockRequest(key=first.key), timeout=10)
    assert second.done.wait(10), "the next waiter did not get the lock"
    assert second.error is None and second.result.key == b"lk/" + format(second_lease, "x").encode()
    # the header is the read that saw no older key: at or after the unlock
    assert second.result.header.revision >= unlocked.header.revision
    time.sleep(0.3)
    assert not third.done.is_set()
    locks.Unlock(lpb.UnlockRequest(key=second.result.key), timeout=10)
    assert third.done.wait(10) and third.error is None
    locks.Unlock(lpb.UnlockRequest(key=third.result.key), timeout=10)
    assert keys(channel, b"lk/") == []


@pytest.mark.timeout(60)
def test_lock_relocks_with_the_same_lease_and_follows_lease_expiry(channel):
    locks = v3lock_pb2_grpc.LockStub(channel)
    lease = grant(channel)
    first = locks.Lock(lpb.LockRequest(name=b"re", lease=lease), timeout=10)
    again = locks.Lock(lpb.LockRequest(name=b"re", lease=lease), timeout=10)
    assert again.key == first.key  # the same lease already holds it
    # a holder whose lease is revoked lets the next one in
    waiter_lease = grant(channel)
    waiter = Background(lambda: locks.Lock(lpb.LockRequest(name=b"re", lease=waiter_lease), timeout=30))
    wait_until(lambda: len(keys(channel, b"re/")) == 2, timeout=10, what="waiter queued")
    rpc_pb2_grpc.LeaseStub(channel).LeaseRevoke(rpc_pb2.LeaseRevokeRequest(ID=lease), timeout=10)
    assert waiter.done.wait(10) and waiter.error is None
    assert waiter.result.key == b"re/" + format(waiter_lease, "x").encode()


@pytest.mark.timeout(60)
def test_lock_without_lease_gets_a_60s_one_and_errors_are_etcds(channel):
    locks = v3lock_pb2_grpc.LockStub(channel)
    response = locks.Lock(lpb.LockRequest(name=b"nolease"), timeout=10)
    lease_id = int(response.key.split(b"/")[1], 16)
    ttl = rpc_pb2_grpc.LeaseStub(channel).LeaseTimeToLive(rpc_pb2.LeaseTimeToLiveRequest(ID=lease_id), timeout=10)
    assert ttl.grantedTTL == 60
    assert error_of(lambda: locks.Lock(lpb.LockRequest(name=b"x", lease=424242), timeout=10)) == \
        (grpc.StatusCode.UNKNOWN, "etcdserver: requested lease not found")
    assert error_of(lambda: locks.Unlock(lpb.UnlockRequest(key=b""), timeout=10)) == \
        (grpc.StatusCode.UNKNOWN, "etcdserver: key is not provided")
    # unlocking what nobody holds is fine, as a delete of nothing
    assert locks.Unlock(lpb.UnlockRequest(key=b"never/locked"), timeout=10).header.revision > 0


@pytest.mark.timeout(60)
def test_a_waiter_that_leaves_takes_its_key_back(channel):
    locks = v3lock_pb2_grpc.LockStub(channel)
    holder = locks.Lock(lpb.LockRequest(name=b"gone", lease=grant(channel)), timeout=10)
    error = error_of(lambda: locks.Lock(lpb.LockRequest(name=b"gone", lease=grant(channel)), timeout=1))
    assert error[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    wait_until(lambda: keys(channel, b"gone/") == [holder.key], timeout=5,
               what="the abandoned waiter's key is deleted")
    future = locks.Lock.future(lpb.LockRequest(name=b"gone", lease=grant(channel)), timeout=30)
    wait_until(lambda: len(keys(channel, b"gone/")) == 2, timeout=10, what="waiter queued")
    future.cancel()
    wait_until(lambda: keys(channel, b"gone/") == [holder.key], timeout=5,
               what="the canceled waiter's key is deleted")
    serves(channel)


# ---- Election ----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_campaign_proclaim_leader_resign(channel):
    election = v3election_pb2_grpc.ElectionStub(channel)
    assert error_of(lambda: election.Leader(epb.LeaderRequest(name=b"el"), timeout=10)) == \
        (grpc.StatusCode.UNKNOWN, "election: no leader")
    lease_a, lease_b = grant(channel), grant(channel)
    won = election.Campaign(epb.CampaignRequest(name=b"el", lease=lease_a, value=b"a1"), timeout=10)
    key_a = b"el/" + format(lease_a, "x").encode()
    assert (won.leader.name, won.leader.key, won.leader.lease) == (b"el", key_a, lease_a)
    assert won.leader.rev == won.header.revision

    leader = election.Leader(epb.LeaderRequest(name=b"el"), timeout=10)
    assert (leader.kv.key, leader.kv.value) == (key_a, b"a1")

    proclaimed = election.Proclaim(epb.ProclaimRequest(leader=won.leader, value=b"a2"), timeout=10)
    assert election.Leader(epb.LeaderRequest(name=b"el"), timeout=10).kv.value == b"a2"
    assert proclaimed.header.revision > won.header.revision

    # b waits behind a
    second = Background(lambda: election.Campaign(
        epb.CampaignRequest(name=b"el", lease=lease_b, value=b"b1"), timeout=30))
    wait_until(lambda: len(keys(channel, b"el/")) == 2, timeout=10, what="b campaigns")
    time.sleep(0.3)
    assert not second.done.is_set()

    stale = epb.LeaderKey(name=b"el", key=key_a, rev=won.leader.rev + 1000, lease=lease_a)
    assert error_of(lambda: election.Proclaim(epb.ProclaimRequest(leader=stale, value=b"x"), timeout=10)) == \
        (grpc.StatusCode.UNKNOWN, "election: not leader")
    # resigning a leadership that is not (any longer) this key's deletes nothing
    election.Resign(epb.ResignRequest(leader=stale), timeout=10)
    assert len(keys(channel, b"el/")) == 2

    election.Resign(epb.ResignRequest(leader=won.leader), timeout=10)
    assert second.done.wait(10) and second.error is None
    assert second.result.leader.key == b"el/" + format(lease_b, "x").encode()
    assert election.Leader(epb.LeaderRequest(name=b"el"), timeout=10).kv.value == b"b1"
    election.Resign(epb.ResignRequest(leader=second.result.leader), timeout=10)


@pytest.mark.timeout(60)
def test_election_errors_are_etcds(channel):
    election = v3election_pb2_grpc.ElectionStub(channel)
    missing = (grpc.StatusCode.UNKNOWN, '"leader" field must be provided')
    assert error_of(lambda: election.Proclaim(epb.ProclaimRequest(value=b"x"), timeout=10)) == missing
    assert error_of(lambda: election.Resign(epb.ResignRequest(), timeout=10)) == missing
    assert error_of(lambda: election.Campaign(epb.CampaignRequest(name=b"e", lease=31337, value=b"v"),
                                              timeout=10)) == \
        (grpc.StatusCode.UNKNOWN, "etcdserver: requested lease not found")
    # campaigning again with the same lease and a new value proclaims it
    lease = grant(channel)
    first = election.Campaign(epb.CampaignRequest(name=b"again", lease=lease, value=b"v1"), timeout=10)
    second = election.Campaign(epb.CampaignRequest(name=b"again", lease=lease, value=b"v2"), timeout=10)
    assert second.leader.rev == first.leader.rev
    assert election.Leader(epb.LeaderRequest(name=b"again"), timeout=10).kv.value == b"v2"


@pytest.mark.timeout(60)
def test_observe_streams_every_leaders_proposals(channel):
    election = v3election_pb2_grpc.ElectionStub(channel)
    stream = election.Observe(epb.LeaderRequest(name=b"obs"), timeout=30)
    seen: list[tuple[bytes, bytes]] = []
    reader = Background(lambda: [seen.append((r.kv.key, r.kv.value)) for r in stream])
    time.sleep(0.3)  # nobody campaigns yet: the observer waits
    lease_a, lease_b = grant(channel), grant(channel)
    key_a = b"obs/" + format(lease_a, "x").encode()
    key_b = b"obs/" + format(lease_b, "x").encode()
    a = election.Campaign(epb.CampaignRequest(name=b"obs", lease=lease_a, value=b"a1"), timeout=10)
    wait_until(lambda: seen == [(key_a, b"a1")], timeout=10, what="first leader observed")
    election.Proclaim(epb.ProclaimRequest(leader=a.leader, value=b"a2"), timeout=10)
    wait_until(lambda: seen[-1:] == [(key_a, b"a2")], timeout=10, what="proclamation observed")
    b = Background(lambda: election.Campaign(epb.CampaignRequest(name=b"obs", lease=lease_b, value=b"b1"),
                                             timeout=30))
    wait_until(lambda: len(keys(channel, b"obs/")) == 2, timeout=10, what="b campaigns")
    election.Resign(epb.ResignRequest(leader=a.leader), timeout=10)
    wait_until(lambda: seen[-1:] == [(key_b, b"b1")], timeout=10, what="next leader observed")
    assert b.done.wait(10) and b.error is None
    assert seen == [(key_a, b"a1"), (key_a, b"a2"), (key_b, b"b1")]
    stream.cancel()
    assert reader.done.wait(10)
    serves(channel)


# ---- through etcdctl ----------------------------------------------------------------------


def _spawn(*args: str) -> subprocess.Popen:
    return subprocess.Popen([ETCDCTL, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "ETCDCTL_API": "3"}, start_new_session=True)


def _stop(process: subprocess.Popen) -> tuple[str, str]:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)  # etcdctl lock / elect let go on SIGINT
    try:
        return process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.communicate(timeout=10)


def _first_line(process: subprocess.Popen, timeout: float = 10.0) -> str:
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    assert box, "etcdctl printed nothing in time"
    return box[0]


@needs_etcdctl
@pytest.mark.timeout(90)
def test_etcdctl_lock_and_elect(member, channel):
    ep = ["--endpoints", member.endpoint]
    holder = _spawn(*ep, "lock", "ctl-lock")
    waiter = None
    try:
        line = _first_line(holder)
        assert line.startswith("ctl-lock/")
        waiter = _spawn(*ep, "lock", "ctl-lock")
        time.sleep(1.0)
        assert waiter.poll() is None and len(keys(channel, b"ctl-lock/")) == 2
        _stop(holder)
        assert _first_line(waiter).startswith("ctl-lock/")
    finally:
        _stop(holder)
        if waiter is not None:
            _stop(waiter)
    wait_until(lambda: keys(channel, b"ctl-lock/") == [], timeout=10, what="locks released")

    # with a command: etcdctl runs it while holding the lock
    result = subprocess.run([ETCDCTL, *ep, "lock", "ctl-lock", "--", "sh", "-c", "echo $ETCD_LOCK_KEY"],
                            capture_output=True, text=True, timeout=30, env={**os.environ, "ETCDCTL_API": "3"})
    assert result.returncode == 0 and result.stdout.startswith("ctl-lock/")

    leader = _spawn(*ep, "elect", "ctl-elect", "p1")
    observer = _spawn(*ep, "elect", "-l", "ctl-elect")
    follower = None
    try:
        assert _first_line(leader).startswith("ctl-elect/")
        assert _first_line(leader) == "p1\n"
        assert _first_line(observer).startswith("ctl-elect/")
        assert _first_line(observer) == "p1\n"
        follower = _spawn(*ep, "elect", "ctl-elect", "p2")
        time.sleep(1.0)
        assert follower.poll() is None  # waits behind p1
        _stop(leader)
        assert _first_line(follower).startswith("ctl-elect/")
        assert _first_line(follower) == "p2\n"
        assert _first_line(observer).startswith("ctl-elect/")
        assert _first_line(observer) == "p2\n"
    finally:
        for process in (leader, observer, follower):
            if process is not None:
                _stop(process)
    serves(channel)
