"""raftkv.server.hashing: the MVCC hashes behind Maintenance.Hash and HashKV,
and raftkv.server.snapshot: the file Maintenance.Snapshot streams."""

from __future__ import annotations

import hashlib
import struct
import zlib

import pytest

from raftkv.client import ops
from raftkv.errors import Compacted, FutureRevision
from raftkv.mvcc.requests import (
    AlarmAction,
    AlarmRequest,
    AlarmType,
    CompactionRequest,
    LeaseGrantRequest,
    LeaseRevokeRequest,
)
from raftkv.mvcc.store import KVStore
from raftkv.server import hashing, snapshot

pytestmark = pytest.mark.timeout(30)


def build(store: KVStore, extra: bool = False) -> KVStore:
    store.apply(LeaseGrantRequest(ttl=30, id=7))
    store.apply(ops.put("a", "1"))
    store.apply(ops.put("b", "2", lease=7))
    store.apply(ops.put("a", "3"))
    store.apply(ops.delete("b"))
    store.apply(ops.txn([ops.version("a") == 2], [ops.put("c", "4"), ops.put("d", "5")], []))
    if extra:
        store.apply(ops.put("e", "6"))
    return store


def test_same_history_same_hashes():
    one, two = build(KVStore()), build(KVStore())
    assert hashing.hash_all(one) == hashing.hash_all(two)
    for revision in range(0, one.revision + 1):
        assert hashing.hash_kv(one, revision) == hashing.hash_kv(two, revision)


def test_a_hash_at_a_revision_ignores_later_writes():
    store = build(KVStore())
    before = hashing.hash_kv(store, 4)
    store.apply(ops.put("a", "later"))
    store.apply(ops.delete("c"))
    after = hashing.hash_kv(store, 4)
    assert after.hash == before.hash
    assert after.revision == before.revision + 2  # the header carries the current revision
    assert hashing.hash_kv(store, 0).hash != before.hash


def test_different_states_hash_differently():
    one, two = build(KVStore()), build(KVStore(), extra=True)
    assert hashing.hash_kv(one, 0).hash != hashing.hash_kv(two, 0).hash
    assert hashing.hash_all(one).hash != hashing.hash_all(two).hash
    # same keys, one value differs by a byte
    three, four = KVStore(), KVStore()
    three.apply(ops.put("k", "v1"))
    four.apply(ops.put("k", "v2"))
    assert hashing.hash_kv(three).hash != hashing.hash_kv(four).hash
    # field boundaries: key "ab" value "c" is not key "a" value "bc"
    five, six = KVStore(), KVStore()
    five.apply(ops.put("ab", "c"))
    six.apply(ops.put("a", "bc"))
    assert hashing.hash_kv(five).hash != hashing.hash_kv(six).hash


def test_whole_state_hash_covers_leases():
    one, two = build(KVStore()), build(KVStore())
    two.apply(LeaseGrantRequest(ttl=5, id=99))
    two.apply(LeaseRevokeRequest(99))
    # revoking an empty lease writes nothing: the versions agree, the leases
    # went and came back, so the states are equal again
    assert hashing.hash_kv(one).hash == hashing.hash_kv(two).hash
    two.apply(LeaseGrantRequest(ttl=5, id=100))
    assert hashing.hash_kv(one).hash == hashing.hash_kv(two).hash
    assert hashing.hash_all(one).hash != hashing.hash_all(two).hash


def test_whole_state_hash_covers_alarms():
    one, two = build(KVStore()), build(KVStore())
    two.apply(AlarmRequest(AlarmAction.ACTIVATE, 5, AlarmType.NOSPACE))
    assert hashing.hash_kv(one).hash == hashing.hash_kv(two).hash
    assert hashing.hash_all(one).hash != hashing.hash_all(two).hash
    two.apply(AlarmRequest(AlarmAction.DEACTIVATE, 5, AlarmType.NOSPACE))
    assert hashing.hash_all(one).hash == hashing.hash_all(two).hash


def test_errors_and_compact_revision_as_etcd():
    store = build(KVStore())
    assert hashing.hash_kv(store).compact_revision == -1  # no compaction yet, as etcd says
    with pytest.raises(FutureRevision):
        hashing.hash_kv(store, store.revision + 1)
    store.apply(CompactionRequest(4))
    with pytest.raises(Compacted):
        hashing.hash_kv(store, 4)  # etcd: at or below the compact revision
    with pytest.raises(Compacted):
        hashing.hash_kv(store, 2)
    result = hashing.hash_kv(store, 5)
    assert result.compact_revision == 4
    assert result.revision == store.revision
    # a negative revision covers nothing (etcd hashes no versions for it)
    assert hashing.hash_kv(store, -3).hash == hashing.hash_kvs([])


def test_compaction_is_deterministic_and_snapshots_keep_the_hash():
    one, two = build(KVStore()), build(KVStore())
    one.apply(CompactionRequest(5))
    two.apply(CompactionRequest(5))
    assert hashing.hash_all(one) == hashing.hash_all(two)
    restored = KVStore()
    restored.restore(one.snapshot())
    assert hashing.hash_all(restored) == hashing.hash_all(one)
    assert hashing.hash_kv(restored, 6) == hashing.hash_kv(one, 6)


def test_hash_is_stable_across_runs():
    # the value must not depend on the process (no Python hash(), no dict order)
    store = KVStore()
    store.apply(ops.put("k", "v"))
    encoded = (b"raftkv/keys\x00" + struct.pack(">I", 1) + b"k"
               + struct.pack(">qqqq", 2, 2, 1, 0) + struct.pack(">I", 1) + b"v")
    assert hashing.hash_kv(store).hash == zlib.crc32(encoded) == 1402103686


# ---- the snapshot file -------------------------------------------------------------


def test_snapshot_file_round_trip():
    store = build(KVStore())
    state = store.snapshot()
    kvs = [vs[-1] for _k, vs in state["keys"] if vs and not vs[-1].is_tombstone]
    original = snapshot.SnapshotState(store.revision, store.compact_revision, 11, 22, kvs,
                                      [(7, 30, [])])
    data = snapshot.encode(original)
    assert len(data) % snapshot.SECTOR == snapshot.CHECKSUM_SIZE  # what etcdctl checks
    assert hashlib.sha256(data[:-32]).digest() == data[-32:]
    assert snapshot.read_snapshot(data) == original
    pieces = list(snapshot.chunks(data, size=100))
    assert b"".join(blob for blob, _ in pieces) == data
    assert [remaining for _, remaining in pieces][-2:] == [0, 0]
    assert pieces[-1][0] == data[-32:]


@pytest.mark.parametrize("damage", ["flip", "truncate", "garbage", "empty"])
def test_damaged_snapshot_is_refused(damage):
    data = bytearray(snapshot.encode(snapshot.SnapshotState(5, -1, kvs=[], leases=[])))
    if damage == "flip":
        data[20] ^= 0xFF
    elif damage == "truncate":
        data = data[:-1]
    elif damage == "garbage":
        data = bytearray(b"\x00" * 512) + hashlib.sha256(b"\x00" * 512).digest()
    else:
        data = bytearray()
    with pytest.raises(snapshot.SnapshotError):
        snapshot.read_snapshot(bytes(data))
