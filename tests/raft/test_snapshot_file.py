"""raftkv's snapshot file: the whole state round-trips, and damage of any kind is refused."""

from __future__ import annotations

import os
import pickle
import zlib

import pytest

from raftkv.mvcc.requests import (
    AlarmAction,
    AlarmRequest,
    AlarmType,
    CompactionRequest,
    DeleteRangeRequest,
    LeaseGrantRequest,
    PutRequest,
    TxnRequest,
)
from raftkv.mvcc import auth
from raftkv.mvcc.store import KVStore
from raftkv.raft import codec
from raftkv.raft.membership import MembershipTable
from raftkv.raft.record_file import RecordWriter, read_records
from raftkv.raft.snapshot import (
    MAGIC,
    READABLE,
    SnapshotError,
    SnapshotMeta,
    load_snapshot,
    peek_meta,
    read_meta,
    state_records,
    write_snapshot,
)

ENTRIES = [(b"\x01", 41, 3), (b"\x10payload", 42, 3)]


def busy_store() -> KVStore:
    store = KVStore()
    store.apply(LeaseGrantRequest(ttl=60, id=7))
    for i in range(50):
        store.apply(PutRequest(b"k%02d" % (i % 20), b"v%d" % i, lease=7 if i % 5 == 0 else 0))
    store.apply(DeleteRangeRequest(b"k03"))
    store.apply(TxnRequest(success=[PutRequest(b"t1", b"a"), PutRequest(b"t2", b"b"),
                                    DeleteRangeRequest(b"k04")]))
    store.apply(CompactionRequest(revision=20))
    store.apply(PutRequest(b"k05", b"after compaction"))
    store.apply(AlarmRequest(AlarmAction.ACTIVATE, 2**64 - 1, AlarmType.NOSPACE))
    store.apply(auth.UserAddRequest("root", b"$2b$10$hash"))
    store.apply(auth.RoleAddRequest("r"))
    store.apply(auth.RoleGrantPermissionRequest("r", auth.Permission(b"a", b"b", auth.PermissionType.WRITE)))
    store.apply(auth.UserGrantRoleRequest("root", "root"))
    store.apply(auth.AuthEnableRequest())
    return store


def membership() -> MembershipTable:
    table = MembershipTable()
    table.apply({"address": "127.0.0.1:2380", "name": "m0", "client_urls": ["http://127.0.0.1:2379"]})
    table.apply({"address": "127.0.0.1:2480", "is_learner": True})
    return table


@pytest.fixture
def written(tmp_path):
    path = str(tmp_path / "snapshot")
    store, members = busy_store(), membership()
    meta = SnapshotMeta(42, 3, ENTRIES, ["127.0.0.1:2380", "127.0.0.1:2382"], 0xABC)
    write_snapshot(path, meta, state_records(store, members))
    return path, store, members


def test_the_state_round_trips(written):
    path, store, members = written
    restored, table = KVStore(), MembershipTable()
    meta = load_snapshot(path, restored, table)
    assert (meta.index, meta.term, meta.entries, meta.cluster_id) == (42, 3, ENTRIES, 0xABC)
    assert restored.snapshot() == store.snapshot()
    assert restored.alarms.raised() and restored.size_in_use == store.size_in_use
    assert restored.auth.enabled and restored.auth.snapshot() == store.auth.snapshot()
    assert table.snapshot() == members.snapshot()
    # history and keys share their versions, as in a store that applied the log
    revision, changes = next(iter(restored.history_since(restored.revision)))
    assert restored.value_at(changes[0].key, revision) is changes[0]


def test_a_large_state_is_written_in_batches_and_round_trips(tmp_path):
    store = KVStore()
    for i in range(1300):
        store.apply(PutRequest(b"b%05d" % (i % 1200), b"x" * (i % 5000)))
    path = str(tmp_path / "snapshot")
    write_snapshot(path, SnapshotMeta(42, 3, ENTRIES), state_records(store, MembershipTable()))
    kinds = [record[0] for record in read_records(path, MAGIC)]
    assert kinds.count("keys") >= 3 and kinds.count("revs") >= 3  # 1,200 keys, 1,300 revisions
    restored = KVStore()
    load_snapshot(path, restored, MembershipTable())
    assert restored.snapshot() == store.snapshot() and restored.key_count == 1200


def test_a_file_of_version_2_is_still_read(tmp_path):
    """Version 2 wrote a record per key ("key") and per revision ("rev")."""
    store, members = busy_store(), membership()
    path = str(tmp_path / "snapshot")
    old_magic = READABLE[1]
    assert old_magic == b"RAFTKV-SNAPSHOT-2\n"
    with open(path, "wb") as f:
        writer = RecordWriter(f, old_magic)
        writer.write(SnapshotMeta(42, 3, ENTRIES).to_record())
        for record in state_records(store, members):
            if record[0] == "keys":
                for key, versions in record[1]:
                    writer.write(["key", key, versions])
            elif record[0] == "revs":
                for revision, changes in record[1]:
                    writer.write(["rev", revision, changes])
            else:
                writer.write(record)
        writer.finish()
    restored, table = KVStore(), MembershipTable()
    assert load_snapshot(path, restored, table).index == 42
    assert restored.snapshot() == store.snapshot() and table.snapshot() == members.snapshot()


def test_read_meta_checks_the_whole_file(written):
    path, _, _ = written
    assert read_meta(path).index == 42


@pytest.mark.parametrize("damage", ["flip", "truncate", "magic", "empty", "append"])
def test_damage_is_refused_with_path_and_offset(written, damage):
    path, _, _ = written
    data = bytearray(open(path, "rb").read())
    if damage == "flip":
        data[len(data) // 2] ^= 0x10
    elif damage == "truncate":
        data = data[: len(data) * 2 // 3]
    elif damage == "magic":
        data[0:4] = b"XXXX"
    elif damage == "empty":
        data = bytearray()
    else:
        data += b"\x00" * 8
    open(path, "wb").write(bytes(data))
    with pytest.raises(SnapshotError) as e:
        read_meta(path)
    assert path in str(e.value) and "at byte" in str(e.value)
    with pytest.raises(SnapshotError):
        load_snapshot(path, KVStore(), MembershipTable())


def test_a_pickle_is_never_loaded(tmp_path):
    marker = tmp_path / "marker"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = str(tmp_path / "snapshot")
    open(path, "wb").write(zlib.compress(pickle.dumps(Evil())))
    with pytest.raises(SnapshotError):
        load_snapshot(path, KVStore(), MembershipTable())
    # a record file whose records are not plain values of a snapshot
    with open(path, "wb") as f:
        writer = RecordWriter(f, MAGIC)
        writer.write(["meta", {"index": 2}])
        writer.finish()
    with pytest.raises(SnapshotError):
        read_meta(path)
    assert not marker.exists()


def test_codec_refuses_what_is_not_plain_data():
    with pytest.raises(codec.DecodeError):
        codec.decode(pickle.dumps({"type": "x"}))
    with pytest.raises(codec.DecodeError):
        codec.decode(b"\xdd\xff\xff\xff\xff")  # an array claiming 4 billion items, in 5 bytes
    with pytest.raises(codec.DecodeError):
        codec.decode(b"\xd4\x01\x00")  # an extension type
    with pytest.raises(TypeError):
        codec.encode(object())
    assert codec.decode(codec.encode({"a": [1, b"x", None, True, 1.5, (2, 3)]})) == \
        {"a": [1, b"x", None, True, 1.5, [2, 3]]}


def test_write_refuses_to_overwrite(written):
    path, store, members = written
    with pytest.raises(FileExistsError):
        write_snapshot(path, SnapshotMeta(42, 3, ENTRIES), state_records(store, members))
    assert os.path.getsize(path) > 0


def test_peek_meta_reads_the_description_alone(written):
    path, _, _ = written
    assert peek_meta(path).index == 42
    data = bytearray(open(path, "rb").read())
    data[-3] ^= 0x10  # damage past the first record: peeking does not see it, loading does
    open(path, "wb").write(bytes(data))
    assert peek_meta(path).index == 42
    with pytest.raises(SnapshotError):
        read_meta(path)
    open(path, "wb").write(b"not a snapshot")
    with pytest.raises(SnapshotError):
        peek_meta(path)


def test_a_large_snapshot_is_synced_as_it_is_written(tmp_path, monkeypatch):
    """A few MiB at a time reach the disk while the file is written, so the
    member's own log fsyncs never wait behind a whole snapshot's data."""
    from raftkv.raft import snapshot as snapshot_module

    synced: list[int] = []
    real_fdatasync = os.fdatasync
    monkeypatch.setattr(snapshot_module, "_SYNC_EVERY", 64 * 1024)
    monkeypatch.setattr(snapshot_module.os, "fdatasync", lambda fd: synced.append(fd) or real_fdatasync(fd))
    store = KVStore()
    for i in range(3000):
        store.apply(PutRequest(b"k%05d" % i, b"x" * 500))
    path = str(tmp_path / "snapshot")
    write_snapshot(path, SnapshotMeta(42, 3, ENTRIES), state_records(store, MembershipTable()))
    assert len(synced) >= 5  # 1.5 MB in records of 512 keys, each past 64 KiB
    restored = KVStore()
    load_snapshot(path, restored, MembershipTable())
    assert restored.snapshot() == store.snapshot()
