"""Stable hashes of a KV store's MVCC state, for Maintenance.Hash and HashKV.

The hash is raftkv's own (etcd hashes its bolt pages; no client compares
hashes across implementations), but it follows etcd's contract:

- ``hash_kv(store, rev)`` covers every version (tombstones included) whose
  mod_revision is at most ``rev``, so members that applied the same log give
  the same value for the same ``rev`` however far each has moved on since,
  as long as they report the same compact revision.
- ``hash_all(store)`` covers the whole replicated state: every version,
  every lease, the revision and the compact revision.

Both walk the keys in byte order and a key's versions oldest first, and
encode each field with a fixed width or a length prefix, so the value is
the same on every platform and Python version. The caller holds whatever
lock guards the store.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass

from raftkv.errors import Compacted, FutureRevision
from raftkv.mvcc.store import KVStore
from raftkv.mvcc.types import KeyValue
from raftkv.raft import codec

_LENGTH = struct.Struct(">I")
_NUMBERS = struct.Struct(">qqqq")
_LEASE = struct.Struct(">qqI")
_REVISIONS = struct.Struct(">qq")
_ALARM = struct.Struct(">QI")

# domain separators: the kinds of record cannot be confused with each other
_KEYS_TAG = b"raftkv/keys\x00"
_LEASES_TAG = b"raftkv/leases\x00"
_STATE_TAG = b"raftkv/state\x00"
_ALARMS_TAG = b"raftkv/alarms\x00"
_AUTH_TAG = b"raftkv/auth\x00"


@dataclass(frozen=True)
class KVHash:
    hash: int
    revision: int
    compact_revision: int


class _Crc:
    """A running CRC-32 (IEEE) over everything fed to it."""

    def __init__(self) -> None:
        self.value = 0

    def feed(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)


def _feed_version(crc: _Crc, kv: KeyValue) -> None:
    crc.feed(_LENGTH.pack(len(kv.key)))
    crc.feed(kv.key)
    crc.feed(_NUMBERS.pack(kv.create_revision, kv.mod_revision, kv.version, kv.lease))
    crc.feed(_LENGTH.pack(len(kv.value)))
    crc.feed(kv.value)


def _feed_versions(crc: _Crc, keys: Iterable[tuple[bytes, list[KeyValue]]], upto: int | None) -> None:
    crc.feed(_KEYS_TAG)
    for _key, versions in keys:
        for kv in versions:
            if upto is not None and kv.mod_revision > upto:
                break  # a key's versions are in revision order
            _feed_version(crc, kv)


def hash_kv(store: KVStore, revision: int = 0) -> KVHash:
    """Hash the versions with mod_revision <= ``revision`` (0: the current
    revision), as etcd's HashKV: a revision at or below the compact revision
    is compacted, one above the current revision is in the future."""
    current, compact = store.revision, store.compact_revision
    if revision > 0 and revision <= compact:
        raise Compacted()
    if revision > 0 and revision > current:
        raise FutureRevision()
    if revision == 0:
        revision = current
    crc = _Crc()
    _feed_versions(crc, store.snapshot()["keys"], revision)
    return KVHash(hash=crc.value, revision=current, compact_revision=compact)


def hash_all(store: KVStore) -> KVHash:
    """Hash the whole replicated state (etcd's Hash)."""
    state = store.snapshot()
    crc = _Crc()
    _feed_versions(crc, state["keys"], None)
    crc.feed(_LEASES_TAG)
    for lease_id, ttl, keys in sorted(state["leases"]):
        crc.feed(_LEASE.pack(lease_id, ttl, len(keys)))
        for key in sorted(keys):
            crc.feed(_LENGTH.pack(len(key)))
            crc.feed(key)
    crc.feed(_ALARMS_TAG)
    for member_id, alarm in state["alarms"]:
        crc.feed(_ALARM.pack(member_id, alarm))
    crc.feed(_AUTH_TAG)
    crc.feed(codec.encode(state["auth"]))
    crc.feed(_STATE_TAG)
    crc.feed(_REVISIONS.pack(state["revision"], state["compact_revision"]))
    return KVHash(hash=crc.value, revision=state["revision"],
                  compact_revision=state["compact_revision"])


def hash_kvs(kvs: Iterable[KeyValue]) -> int:
    """The hash of a list of live versions in key order: what a member can
    offer when it reaches its store only through reads (see maintenance)."""
    crc = _Crc()
    crc.feed(_KEYS_TAG)
    for kv in kvs:
        _feed_version(crc, kv)
    return crc.value
