"""The Raft snapshot: what it holds, in raftkv's own record file.

A snapshot covers the log up to ``index``. It carries the last two log
entries it covers (pysyncobj's log always starts with them again), the
voting members at that point, the cluster id, and the replicated state: the
KV store (every key's versions, the history since the last compaction, the
leases) and the membership table. Everything is plain values in a
checksummed record file (``record_file``): loading one builds data and
never runs code.

    ["meta", {index, term, entries, voters, cluster_id}]
    ["store", revision, compact_revision]
    ["keys", [[key, [[create, mod, version, value, lease], ...]], ...]]
    ["revs", [[revision, [change, ...]], ...]]
                        a change is [key, mod] when it is a version the
                        keys above hold, else a whole KeyValue
    ["lease", id, ttl, [key, ...]]
    ["alarm", member_id, alarm_type]
    ["auth", {enabled, revision, users, roles}]
    ["member", {address, name, peer_urls, client_urls, is_learner}]
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator
from dataclasses import dataclass, field

from raftkv.mvcc.store import KVStore
from raftkv.mvcc.types import KeyValue
from raftkv.raft.membership import MembershipTable
from raftkv.raft.record_file import RecordFileError, RecordWriter, read_records

MAGIC = b"RAFTKV-SNAPSHOT-3\n"
# version 2 kept a record per key ("key") and per revision ("rev"); its files are still read
READABLE = (MAGIC, b"RAFTKV-SNAPSHOT-2\n")
_BATCH_ITEMS = 512  # keys or revisions in one record, at most
_BATCH_BYTES = 1 << 20  # and about this many bytes of values
_WRITE_BUFFER = 1 << 20

Entry = tuple[bytes, int, int]  # a log entry as pysyncobj keeps it: (command, index, term)


class SnapshotError(RecordFileError):
    """A snapshot file that cannot be vouched for (damaged, cut short, foreign)."""


@dataclass
class SnapshotMeta:
    index: int
    term: int
    entries: list[Entry]            # the last two entries covered, oldest first
    voters: list[str] = field(default_factory=list)
    cluster_id: int = 0

    def to_record(self) -> list:
        return ["meta", {"index": self.index, "term": self.term,
                         "entries": [list(e) for e in self.entries],
                         "voters": sorted(self.voters), "cluster_id": self.cluster_id}]

    @classmethod
    def from_record(cls, record: object) -> SnapshotMeta:
        if not (isinstance(record, list) and len(record) == 2 and record[0] == "meta"
                and isinstance(record[1], dict)):
            raise ValueError("the first record is not the snapshot's description")
        d = record[1]
        entries = [(bytes(c), int(i), int(t)) for c, i, t in d["entries"]]
        meta = cls(int(d["index"]), int(d["term"]), entries, [str(v) for v in d["voters"]],
                   int(d["cluster_id"]))
        if len(entries) != 2 or entries[1][1] != meta.index or entries[1][2] != meta.term \
                or entries[0][1] != meta.index - 1:
            raise ValueError("the snapshot's entries do not end at its index")
        return meta


def _kv_fields(kv: KeyValue) -> list:
    return [kv.create_revision, kv.mod_revision, kv.version, kv.value, kv.lease]


def _in_batches(kind: str, items: Iterator[tuple[list, int]]) -> Iterator[list]:
    """Records of ``kind``, each holding up to ``_BATCH_ITEMS`` of the
    (item, bytes) given, or about ``_BATCH_BYTES``."""
    batch: list = []
    size = 0
    for item, item_size in items:
        batch.append(item)
        size += item_size
        if len(batch) >= _BATCH_ITEMS or size >= _BATCH_BYTES:
            yield [kind, batch]
            batch, size = [], 0
    if batch:
        yield [kind, batch]


def state_records(store: KVStore, membership: MembershipTable) -> Iterator[list]:
    """The replicated state as records (see the module's doc), streamed."""
    state = store.snapshot()
    yield ["store", state["revision"], state["compact_revision"]]
    yield from _in_batches("keys", (([key, [_kv_fields(kv) for kv in versions]], sum(len(kv.value) for kv in versions))
                                    for key, versions in state["keys"]))

    def revisions() -> Iterator[tuple[list, int]]:
        for revision, changes in state["history"]:
            encoded, size = [], 0
            for kv in changes:
                if not kv.is_tombstone and store.value_at(kv.key, kv.mod_revision) is kv:
                    encoded.append([kv.key, kv.mod_revision])
                else:
                    encoded.append([kv.key, *_kv_fields(kv)])
                    size += len(kv.value)
            yield [revision, encoded], size

    yield from _in_batches("revs", revisions())
    for lease_id, ttl, keys in state["leases"]:
        yield ["lease", lease_id, ttl, list(keys)]
    for member_id, alarm in state["alarms"]:
        yield ["alarm", member_id, alarm]
    for auth in state["auth"]:
        yield ["auth", auth]
    for record in membership.snapshot():
        yield ["member", record]


_SYNC_EVERY = 4 * 1024 * 1024


def write_snapshot(path: str, meta: SnapshotMeta, records: Iterator[list]) -> None:
    """Write the snapshot to ``path`` (a new file) and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    with os.fdopen(fd, "wb", buffering=_WRITE_BUFFER) as f:
        writer = RecordWriter(f, MAGIC)
        writer.write(meta.to_record())
        synced = 0
        for record in records:
            writer.write(record)
            if f.tell() - synced >= _SYNC_EVERY:
                # little written-back data at a time: the member's own log
                # fsyncs, which the file system may order after this file's
                # dirty data, never wait for a whole snapshot's
                f.flush()
                os.fdatasync(f.fileno())
                synced = f.tell()
        writer.finish()
        f.flush()
        os.fsync(f.fileno())


class _Records:
    """The records of a file, read one at a time, with a look at the next one's kind."""

    def __init__(self, path: str) -> None:
        self._it = read_records(path, READABLE)
        self._next: object = None
        self._done = False
        self._advance()

    def _advance(self) -> None:
        try:
            self._next = next(self._it)
        except StopIteration:
            self._next, self._done = None, True

    def take(self) -> object:
        record = self._next
        self._advance()
        return record

    def run(self, *kinds: str) -> Iterator[list]:
        """The consecutive records of these kinds."""
        while not self._done and isinstance(self._next, list) and self._next[:1] and self._next[0] in kinds:
            yield self.take()

    @property
    def exhausted(self) -> bool:
        return self._done


def _read_meta(records: _Records, path: str) -> SnapshotMeta:
    try:
        return SnapshotMeta.from_record(records.take())
    except (ValueError, TypeError, KeyError) as e:
        raise SnapshotError(path, 0, str(e)) from None


@contextlib.contextmanager
def _file_errors_as_snapshot_errors() -> Iterator[None]:
    try:
        yield
    except RecordFileError as e:
        if isinstance(e, SnapshotError):
            raise
        raise SnapshotError(e.path, e.offset, e.reason) from None


def peek_meta(path: str) -> SnapshotMeta:
    """The file's description, from its first record alone (checked); the
    rest of the file is not read."""
    with _file_errors_as_snapshot_errors():
        return _read_meta(_Records(path), path)


def read_meta(path: str) -> SnapshotMeta:
    """Check the whole file (every checksum, the end) and return its description."""
    with _file_errors_as_snapshot_errors():
        records = _Records(path)
        meta = _read_meta(records, path)
        while not records.exhausted:
            records.take()
    return meta


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """Loading builds millions of objects that all live on: the cyclic
    collector's passes over them would take about as long as the loading."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def load_snapshot(path: str, store: KVStore, membership: MembershipTable) -> SnapshotMeta:
    """Replace the state of ``store`` and ``membership`` with the snapshot's.

    The file is checked as it is read; on any error SnapshotError is raised
    and the state must be considered lost (callers check the file with
    ``read_meta`` first when the state still matters, or load into a new
    store)."""
    with _collector_paused(), _file_errors_as_snapshot_errors():
        return _load_snapshot(path, store, membership)


def _load_snapshot(path: str, store: KVStore, membership: MembershipTable) -> SnapshotMeta:
    try:
        records = _Records(path)
        meta = _read_meta(records, path)
        head = records.take()
        if not (isinstance(head, list) and len(head) == 3 and head[0] == "store"):
            raise SnapshotError(path, 0, "the store's record is missing")

        def batched(*kinds: str) -> Iterator[list]:
            for record in records.run(*kinds):
                if record[0] in ("keys", "revs"):
                    (_, batch) = record
                    yield from batch
                else:  # version 2: one a record
                    yield record[1:]

        def keys() -> Iterator[tuple[bytes, list[KeyValue]]]:
            for key, versions in batched("keys", "key"):
                yield key, [KeyValue(key, c, m, v, value, lease) for c, m, v, value, lease in versions]

        def history() -> Iterator[tuple[int, list[KeyValue]]]:
            for revision, changes in batched("revs", "rev"):
                kvs = []
                for change in changes:
                    if len(change) == 2:
                        kv = store.value_at(change[0], change[1])
                        if kv is None or kv.mod_revision != change[1]:
                            raise SnapshotError(path, 0, f"revision {revision} names a version it does not hold")
                        kvs.append(kv)
                    else:
                        kvs.append(KeyValue(*change))
                yield revision, kvs

        def leases() -> Iterator[tuple[int, int, list[bytes]]]:
            for _, lease_id, ttl, lease_keys in records.run("lease"):
                yield lease_id, ttl, lease_keys

        def alarms() -> Iterator[tuple[int, int]]:
            for _, member_id, alarm in records.run("alarm"):
                yield member_id, alarm

        def auth() -> Iterator[dict]:
            for _, state in records.run("auth"):
                yield state

        store.restore({"revision": head[1], "compact_revision": head[2],
                       "keys": keys(), "history": history(), "leases": leases(), "alarms": alarms(),
                       "auth": auth()})
        membership.restore([record for _, record in records.run("member")])
        if not records.exhausted:
            raise SnapshotError(path, 0, f"an unexpected record: {str(records.take())[:80]}")
    except RecordFileError:
        raise  # the caller makes it a SnapshotError
    except (ValueError, TypeError, KeyError, IndexError) as e:
        raise SnapshotError(path, 0, f"a record that is not part of a snapshot ({e})") from None
    return meta
