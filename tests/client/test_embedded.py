"""The public API through ``raftkv.open()``: keys, ranges, deletes, txns,
compaction, leases, status, close and the typed errors.

Lease time is a fake clock handed to ``raftkv.open(clock=...)``; it moves
only when a test says so.
"""

from __future__ import annotations

import threading
import time

import pytest

import raftkv
from raftkv import errors, ops
from raftkv.mvcc import (
    DeleteRangeResponse,
    KeyValue,
    PutResponse,
    RangeResponse,
    StoreLimits,
    TxnResponse,
)

pytestmark = pytest.mark.timeout(60)


class FakeClock:
    """Seconds that pass only through ``advance``.

    With ``only_for`` set, threads other than that one (the store's background
    ticker, a lease keeper) keep seeing the starting time, so only what the
    test itself calls can notice time passing.
    """

    def __init__(self, start: float = 1000.0, only_for: threading.Thread | None = None) -> None:
        self.start = self.now = start
        self.only_for = only_for

    def __call__(self) -> float:
        if self.only_for is not None and threading.current_thread() is not self.only_for:
            return self.start
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def kv():
    store = raftkv.open()
    yield store
    store.close()


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
def timed(clock):
    """A store on the fake clock, allowing 1 s leases."""
    store = raftkv.open(limits=StoreLimits(min_lease_ttl=1), clock=clock)
    yield store
    store.close()


def keys_of(response: RangeResponse) -> list[bytes]:
    return [kv.key for kv in response.kvs]


# ---- put / get -----------------------------------------------------------------------------


def test_put_and_get_with_str_and_bytes(kv):
    assert kv.status().revision == 1
    first = kv.put("greeting", "hello")
    assert first == PutResponse(revision=2)
    assert kv.get("greeting") == KeyValue(b"greeting", 2, 2, 1, b"hello")
    assert kv.get(b"greeting").value == b"hello"

    second = kv.put(b"greeting", b"\x00\xffbin", prev_kv=True)
    assert second.revision == 3
    assert second.prev_kv == KeyValue(b"greeting", 2, 2, 1, b"hello")
    assert kv.get("greeting") == KeyValue(b"greeting", 2, 3, 2, b"\x00\xffbin")
    assert kv.get("greeting", revision=2).value == b"hello"   # the past stays readable
    assert kv.get("missing") is None
    assert kv.put("ünï", "ç").revision == 4
    assert kv.get("ünï".encode()).value == "ç".encode()


def test_put_ignore_value_keeps_the_value(kv):
    kv.put("k", "v1")
    kv.put("k", ignore_value=True)
    assert kv.get("k").value == b"v1"
    assert kv.get("k").version == 2


# ---- range -----------------------------------------------------------------------------


@pytest.fixture
def filled(kv):
    kv.put("a/1", "3")    # 2
    kv.put("a/2", "1")    # 3
    kv.put("a0", "2")     # 4
    kv.put("b", "0")      # 5
    kv.put("a/1", "4")    # 6
    kv.put(b"\xff\xff", "x")  # 7
    return kv


def test_range_prefix_from_key_and_explicit_end(filled):
    kv = filled
    assert keys_of(kv.range("a/", prefix=True)) == [b"a/1", b"a/2"]
    assert keys_of(kv.range("a", prefix=True)) == [b"a/1", b"a/2", b"a0"]
    assert keys_of(kv.range("", prefix=True)) == [b"a/1", b"a/2", b"a0", b"b", b"\xff\xff"]
    assert keys_of(kv.range(b"\xff", prefix=True)) == [b"\xff\xff"]   # all-0xff prefix: no end
    assert keys_of(kv.range("a0", from_key=True)) == [b"a0", b"b", b"\xff\xff"]
    assert keys_of(kv.range("", from_key=True)) == [b"a/1", b"a/2", b"a0", b"b", b"\xff\xff"]
    assert keys_of(kv.range("a/", "a0")) == [b"a/1", b"a/2"]
    assert keys_of(kv.range(b"a/2", b"b")) == [b"a/2", b"a0"]
    assert keys_of(kv.range("b", "a")) == []                           # inverted: empty
    response = kv.range("a", prefix=True)
    assert response.revision == 7 and response.count == 3 and not response.more


def test_range_limit_count_keys_only_and_revision(filled):
    kv = filled
    limited = kv.range("", prefix=True, limit=2)
    assert keys_of(limited) == [b"a/1", b"a/2"] and limited.more and limited.count == 5
    counted = kv.range("a", prefix=True, count_only=True)
    assert counted.kvs == [] and counted.count == 3
    bare = kv.range("a", prefix=True, keys_only=True)
    assert [kv_.value for kv_ in bare.kvs] == [b"", b"", b""]
    assert keys_of(kv.range("a", prefix=True, revision=3)) == [b"a/1", b"a/2"]
    assert kv.range("a/1", revision=2).kvs[0].value == b"3"


@pytest.mark.parametrize("target, order, expected", [
    ("mod", "descend", [b"a/1", b"a0", b"a/2"]),
    ("mod", "ascend", [b"a/2", b"a0", b"a/1"]),
    ("create", "descend", [b"a0", b"a/2", b"a/1"]),
    ("value", "ascend", [b"a/2", b"a0", b"a/1"]),
    ("version", "descend", [b"a/1", b"a/2", b"a0"]),     # a/1 has version 2, the others tie at 1
    ("key", "descend", [b"a0", b"a/2", b"a/1"]),
    ("KEY", "NONE", [b"a/1", b"a/2", b"a0"]),
    ("mod", "none", [b"a/2", b"a0", b"a/1"]),            # a non-key target sorts ascending
])
def test_range_sort_by_name(filled, target, order, expected):
    got = keys_of(filled.range("a", prefix=True, sort_target=target, sort_order=order))
    if target == "version":  # etcd's sort is not stable: only the order of versions is fixed
        assert got[0] == expected[0] and set(got) == set(expected)
    else:
        assert got == expected


def test_range_mod_and_create_revision_filters(filled):
    kv = filled
    assert keys_of(kv.range("a", prefix=True, min_mod_revision=4)) == [b"a/1", b"a0"]
    assert keys_of(kv.range("a", prefix=True, max_mod_revision=3)) == [b"a/2"]
    assert keys_of(kv.range("a", prefix=True, min_create_revision=3)) == [b"a/2", b"a0"]
    assert keys_of(kv.range("a", prefix=True, max_create_revision=2)) == [b"a/1"]


# ---- delete ----------------------------------------------------------------------------


def test_delete_single_range_prefix_and_from_key(filled):
    kv = filled
    gone = kv.delete("a/1", prev_kv=True)
    assert gone.deleted == 1 and gone.revision == 8
    assert gone.prev_kvs == [KeyValue(b"a/1", 2, 6, 2, b"4")]
    assert kv.get("a/1") is None

    nothing = kv.delete("a/1")
    assert nothing == DeleteRangeResponse(revision=8, deleted=0)   # no new revision

    assert kv.delete("a", prefix=True).deleted == 2                # a/2, a0
    assert kv.delete("a", "c").deleted == 1                         # b
    assert kv.delete("", from_key=True).deleted == 1                # \xff\xff
    assert kv.range("", prefix=True).count == 0
    assert kv.status().key_count == 0
    assert kv.get("b", revision=7).value == b"0"


# ---- txn -----------------------------------------------------------------------------------


def test_txn_builder_then_and_else(kv):
    created = (kv.txn()
               .if_(raftkv.version("k") == 0)
               .then(raftkv.ops.put("k", "first"))
               .else_(raftkv.ops.get("k"))
               .commit())
    assert isinstance(created, TxnResponse)
    assert created.succeeded and created.revision == 2
    assert created.responses == [PutResponse(revision=2)]

    again = (kv.txn()
             .if_(raftkv.version("k") == 0)
             .then(raftkv.ops.put("k", "second"))
             .else_(raftkv.ops.get("k"))
             .commit())
    assert not again.succeeded and again.revision == 2               # read-only: no revision
    (read,) = again.responses
    assert isinstance(read, RangeResponse) and read.kvs[0].value == b"first"
    assert kv.get("k").value == b"first"


def test_txn_compare_targets_and_multiple_ops(kv):
    kv.put("k", "v")                      # 2
    kv.put("other", "o")                  # 3
    response = (kv.txn()
                .if_(raftkv.value("k") == "v",
                     raftkv.mod_revision("k") == 2,
                     raftkv.create_revision("k") < 3,
                     raftkv.version("k") > 0,
                     raftkv.lease("k") == 0,
                     raftkv.version("k", prefix=True) != 5,
                     raftkv.value("zzz") != "x")           # a value compare on a missing key
                .then(ops.put("k", "w"), ops.delete("other"))
                .commit())
    assert not response.succeeded                           # ... always fails
    assert response.responses == [] and kv.get("k").value == b"v"

    response = (kv.txn()
                .if_(raftkv.value("k") == "v", raftkv.mod_revision("k") == 2)
                .then(ops.put("k", "w", prev_kv=True), ops.delete("other"),
                      ops.txn([raftkv.value("k") == "v"], [ops.get("k")], []))
                .commit())
    assert response.succeeded and response.revision == 4
    put, delete, nested = response.responses
    assert put.prev_kv.value == b"v"
    assert delete.deleted == 1
    # nested compares see the state before the txn; nested reads see its writes
    assert nested.succeeded and nested.responses[0].kvs[0].value == b"w"
    assert kv.get("other") is None


def test_txn_errors(kv):
    with pytest.raises(errors.DuplicateKey):
        kv.txn().then(ops.put("k", "1"), ops.put("k", "2")).commit()
    with pytest.raises(errors.DuplicateKey):
        kv.txn().then(ops.delete("a", prefix=True), ops.put("a/b", "x")).commit()
    with pytest.raises(TypeError):
        raftkv.version("k") == "not an int"   # noqa: B015
    with pytest.raises(errors.FutureRevision):
        kv.txn().then(ops.get("k", revision=99)).commit()
    assert kv.status().revision == 1


def test_txn_too_many_ops():
    kv = raftkv.open(limits=StoreLimits(max_txn_ops=2))
    try:
        kv.txn().then(ops.put("a"), ops.put("b")).commit()
        with pytest.raises(errors.TooManyOps):
            kv.txn().then(ops.put("a"), ops.put("b"), ops.put("c")).commit()
    finally:
        kv.close()


# ---- compaction -------------------------------------------------------------------------------


def test_compact(kv):
    for i in range(5):
        kv.put("k", str(i))               # revisions 2..6
    assert kv.status().compact_revision == 0
    assert kv.compact(4) == 6             # returns the current revision
    assert kv.status().compact_revision == 4
    assert kv.get("k", revision=4).value == b"2"
    with pytest.raises(errors.Compacted):
        kv.get("k", revision=3)
    with pytest.raises(errors.Compacted):
        kv.compact(4)
    with pytest.raises(errors.FutureRevision):
        kv.compact(7)
    with pytest.raises(errors.FutureRevision):
        kv.get("k", revision=7)
    assert kv.get("k").value == b"4"


# ---- leases -------------------------------------------------------------------------------------


def test_lease_grant_attach_time_to_live_and_revoke(timed, clock):
    kv = timed
    lease = kv.lease(10)
    assert isinstance(lease, raftkv.Lease) and lease.ttl == 10 and lease.id != 0
    assert kv.leases() == [lease.id]
    kv.put("k2", "v", lease=lease)
    kv.put("k1", "v", lease=lease.id)
    kv.put("free", "v")
    assert kv.get("k1").lease == lease.id

    info = lease.time_to_live(keys=True)
    assert (info.id, info.ttl, info.granted_ttl, info.keys) == (lease.id, 10, 10, [b"k1", b"k2"])
    assert lease.time_to_live().keys == []

    clock.advance(4.5)
    assert lease.time_to_live().ttl == 5          # etcd truncates the seconds left
    assert lease.keep_alive() == 10
    assert lease.time_to_live().ttl == 10         # renewed from now

    kv.put("k2", "unleased")                      # a put without lease detaches the key
    assert lease.time_to_live(keys=True).keys == [b"k1"]

    rev = kv.status().revision
    lease.revoke()
    assert kv.get("k1") is None
    assert kv.get("k2").value == b"unleased" and kv.get("free") is not None
    assert kv.status().revision == rev + 1        # one revision for the revoke's deletes
    assert kv.leases() == []
    assert kv.lease_time_to_live(lease.id).ttl == -1
    with pytest.raises(errors.LeaseNotFound):
        lease.revoke()
    with pytest.raises(errors.LeaseNotFound):
        lease.keep_alive()


def test_lease_ids_ttls_and_errors():
    kv = raftkv.open(limits=StoreLimits(min_lease_ttl=5))
    try:
        raised = kv.lease(1)
        assert raised.ttl == 5                      # raised to the minimum
        chosen = kv.lease(30, lease_id=12345)
        assert chosen.id == 12345 and chosen.ttl == 30
        with pytest.raises(errors.LeaseExists):
            kv.lease(30, lease_id=12345)
        with pytest.raises(errors.LeaseTTLTooLarge):
            kv.lease(9_000_000_001)
        with pytest.raises(errors.LeaseNotFound):
            kv.put("k", "v", lease=999)
        with pytest.raises(errors.LeaseNotFound):
            kv.lease_revoke(999)
        with pytest.raises(errors.LeaseNotFound):
            kv.lease_keep_alive(999)
        assert kv.lease_time_to_live(999).ttl == -1
        assert sorted(kv.leases()) == sorted([raised.id, chosen.id])
    finally:
        kv.close()


def test_expire_leases_revokes_keys_at_the_deadline():
    clock = FakeClock(only_for=threading.current_thread())  # the ticker sees time stand still
    kv = raftkv.open(limits=StoreLimits(min_lease_ttl=1), clock=clock)
    try:
        short, long_ = kv.lease(5), kv.lease(8)
        kv.put("short", "v", lease=short)
        kv.put("long", "v", lease=long_)
        clock.advance(4.9)
        assert kv.expire_leases() == []
        assert kv.get("short") is not None
        clock.advance(0.2)                            # just past the deadline
        assert kv.expire_leases() == [short.id]
        assert kv.get("short") is None and kv.get("long") is not None
        assert kv.leases() == [long_.id]
        assert kv.expire_leases() == []               # revoked once
        clock.advance(3)
        assert kv.expire_leases() == [long_.id]
        assert kv.get("long") is None and kv.leases() == []
    finally:
        kv.close()


def test_background_expiry_revokes_keys(timed, clock):
    kv = timed
    lease = kv.lease(2)
    kv.put("k", "v", lease=lease)
    with kv.watch("k") as watch:
        clock.advance(2)
        response = watch.next_response(timeout=20)   # the ticker, no expire_leases() call
        assert response is not None
        assert [(e.type, e.kv.key) for e in response.events] == [(raftkv.EventType.DELETE, b"k")]
    assert kv.leases() == []


def test_lease_context_manager_keeps_alive_past_ttl_and_revokes_on_exit(timed, clock):
    kv = timed
    renewed = threading.Event()
    keep_alive = kv.lease_keep_alive

    def spy(lease_id):              # tell the test each time the keeper renews
        ttl = keep_alive(lease_id)
        renewed.set()
        return ttl

    kv.lease_keep_alive = spy

    with kv.lease(3) as lease:
        kv.put("held", "v", lease=lease)
        for _ in range(4):                          # 8 s of fake time: well past the 3 s TTL
            clock.advance(2)
            deadline = time.monotonic() + 20
            while lease.time_to_live().ttl != 3:    # 3 only once renewed at the current time
                renewed.clear()
                if lease.time_to_live().ttl == 3:
                    break
                assert renewed.wait(deadline - time.monotonic()), "the keeper stopped renewing"
            assert kv.expire_leases() == []
            assert kv.get("held") is not None
        assert kv.leases() == [lease.id]
    assert kv.get("held") is None                   # revoked on exit
    assert kv.leases() == []
    assert not [t for t in threading.enumerate() if t.name == f"raftkv-lease-{lease.id:x}"]


def test_lease_context_manager_revokes_when_the_block_raises(kv):
    with pytest.raises(RuntimeError):
        with kv.lease(60) as lease:
            kv.put("k", "v", lease=lease)
            raise RuntimeError("boom")
    assert kv.get("k") is None and kv.leases() == []


def test_keep_alive_after_the_deadline_does_not_revive_the_lease():
    clock = FakeClock(only_for=threading.current_thread())  # the ticker cannot expire it
    kv = raftkv.open(limits=StoreLimits(min_lease_ttl=1), clock=clock)
    try:
        lease = kv.lease(5)
        kv.put("k", "v", lease=lease)
        clock.advance(6)                                     # past the deadline
        with pytest.raises(errors.LeaseNotFound):
            lease.keep_alive()
    finally:
        kv.close()


# ---- status, close, errors -----------------------------------------------------------------


def test_status(kv):
    kv.put("a", "1")
    kv.put("b", "2")
    kv.delete("a")
    kv.lease(60)
    watch = kv.watch("a")
    status = kv.status()
    assert isinstance(status, raftkv.Status)
    assert status.version == raftkv.__version__
    assert status.member_id == status.leader != 0
    assert status.revision == 4
    assert status.compact_revision == 0
    assert status.key_count == 1
    assert status.lease_count == 1
    assert status.watcher_count == 1
    watch.cancel()
    assert kv.status().watcher_count == 0


def test_close_makes_every_call_raise_store_closed():
    kv = raftkv.open()
    kv.put("k", "v")
    lease = kv.lease(60)
    kv.close()
    kv.close()                                          # closing twice is fine
    assert kv.closed
    calls = [
        lambda: kv.put("k", "v"),
        lambda: kv.get("k"),
        lambda: kv.range("", prefix=True),
        lambda: kv.delete("k"),
        lambda: kv.txn().then(ops.put("k", "v")).commit(),
        lambda: kv.compact(1),
        lambda: kv.lease(60),
        lambda: kv.lease_revoke(lease.id),
        lambda: kv.lease_keep_alive(lease.id),
        lambda: kv.lease_time_to_live(lease.id),
        lambda: kv.leases(),
        lambda: kv.watch("k"),
        lambda: kv.status(),
    ]
    for call in calls:
        with pytest.raises(errors.StoreClosed) as caught:
            call()
        assert str(caught.value) == "etcdserver: server stopped"
    assert kv.expire_leases() == []


def test_context_manager_closes():
    with raftkv.open() as kv:
        kv.put("k", "v")
    with pytest.raises(errors.StoreClosed):
        kv.get("k")


@pytest.mark.parametrize("call, error, message, code", [
    (lambda kv: kv.put("", "v"), errors.EmptyKey, "etcdserver: key is not provided",
     "INVALID_ARGUMENT"),
    (lambda kv: kv.get(""), errors.EmptyKey, "etcdserver: key is not provided",
     "INVALID_ARGUMENT"),
    (lambda kv: kv.put("k", "v", ignore_value=True), errors.ValueProvided,
     "etcdserver: value is provided", "INVALID_ARGUMENT"),
    (lambda kv: kv.put("missing", ignore_value=True), errors.KeyNotFound,
     "etcdserver: key not found", "INVALID_ARGUMENT"),
    (lambda kv: kv.put("k", "x" * 200), errors.RequestTooLarge,
     "etcdserver: request is too large", "INVALID_ARGUMENT"),
    (lambda kv: kv.txn().then(ops.put("k"), ops.put("k")).commit(), errors.DuplicateKey,
     "etcdserver: duplicate key given in txn request", "INVALID_ARGUMENT"),
    (lambda kv: kv.get("k", revision=50), errors.FutureRevision,
     "etcdserver: mvcc: required revision is a future revision", "OUT_OF_RANGE"),
    (lambda kv: kv.compact(1) and kv.compact(1), errors.Compacted,
     "etcdserver: mvcc: required revision has been compacted", "OUT_OF_RANGE"),
    (lambda kv: kv.lease_revoke(42), errors.LeaseNotFound,
     "etcdserver: requested lease not found", "NOT_FOUND"),
])
def test_typed_errors(call, error, message, code):
    kv = raftkv.open(limits=StoreLimits(max_request_bytes=128))
    try:
        with pytest.raises(error) as caught:
            call(kv)
        assert isinstance(caught.value, raftkv.RaftKVError)
        assert str(caught.value) == message
        assert caught.value.grpc_code == code
        assert kv.status().revision == 1               # nothing was written
    finally:
        kv.close()


def test_argument_errors(kv):
    with pytest.raises(ValueError):
        kv.range("a", prefix=True, from_key=True)
    with pytest.raises(ValueError):
        kv.range("a", "b", prefix=True)
    with pytest.raises(TypeError):
        kv.put(42, "v")
    with pytest.raises(TypeError):
        kv.put("k", 42)
