"""The snapshot file Maintenance.Snapshot streams: raftkv's own format.

etcd streams its bolt database; raftkv streams the live state of its store
at one revision, encoded with etcd's protobuf messages (no pickle, nothing
executable), framed so ``etcdctl snapshot save`` accepts it:

    magic      b"raftkv-snapshot\\n"            16 bytes
    records    tag (1 byte) + length (4 bytes, big-endian) + payload
        b"H"   a JSON object: format, revision, compact_revision,
               cluster_id, member_id, keys, leases
        b"K"   one live key: an mvccpb.KeyValue, in key order
        b"L"   one lease: an etcdserverpb.LeaseTimeToLiveResponse holding
               ID, grantedTTL and the lease's keys
        b"E"   the end, with an empty payload
    padding    zero bytes up to a multiple of 512 bytes
    checksum   the sha256 of everything before it, 32 bytes

etcdctl checks exactly that last shape (size % 512 == 32) before it keeps
the file. ``read_snapshot`` checks the checksum and the framing and gives
the state back.
"""

from __future__ import annotations

import hashlib
import io
import json
import struct
from dataclasses import dataclass, field
from typing import BinaryIO

from raftkv._proto.etcdserverpb import rpc_pb2
from raftkv._proto.mvccpb import kv_pb2
from raftkv.client import ops
from raftkv.errors import LeaseNotFound
from raftkv.mvcc.types import KeyValue
from raftkv.server.context import ServerContext
from raftkv.wire import kv_from_pb, kv_to_pb

MAGIC = b"raftkv-snapshot\n"
FORMAT = 1
SECTOR = 512  # etcdctl wants the data (without the checksum) to fill whole sectors
CHECKSUM_SIZE = hashlib.sha256().digest_size
CHUNK_SIZE = 32 * 1024  # as etcd: a few pages per message

_FRAME = struct.Struct(">cI")


class SnapshotError(ValueError):
    """Not a raftkv snapshot, or a damaged one."""


@dataclass
class SnapshotState:
    revision: int
    compact_revision: int
    cluster_id: int = 0
    member_id: int = 0
    kvs: list[KeyValue] = field(default_factory=list)
    leases: list[tuple[int, int, list[bytes]]] = field(default_factory=list)


def capture(ctx: ServerContext) -> SnapshotState:
    """The live keys and leases of the member's store at one revision."""
    with ctx.local_store() as store:
        if store is not None:
            state = store.snapshot()
            kvs = [versions[-1] for _key, versions in state["keys"]
                   if versions and not versions[-1].is_tombstone]
            leases = [(lease_id, ttl, list(keys)) for lease_id, ttl, keys in state["leases"]]
            return SnapshotState(state["revision"], state["compact_revision"], ctx.cluster_id,
                                 ctx.member_id, kvs, sorted(leases))
    # only requests reach the store: one range is consistent; the leases are
    # read after it and may be a little newer
    response = ctx.kv.execute(ops.get(b"", prefix=True))
    leases = []
    for lease_id in sorted(ctx.kv.leases()):
        try:
            ttl = ctx.kv.lease_time_to_live(lease_id, keys=True)
        except LeaseNotFound:
            continue
        if ttl.ttl >= 0:
            leases.append((lease_id, ttl.granted_ttl, sorted(ttl.keys)))
    return SnapshotState(response.revision, ctx.kv.status().compact_revision, ctx.cluster_id,
                         ctx.member_id, list(response.kvs), leases)


def _record(tag: bytes, payload: bytes) -> bytes:
    return _FRAME.pack(tag, len(payload)) + payload


def write(out: BinaryIO, state: SnapshotState) -> int:
    """Write the snapshot file to ``out`` a record at a time (nothing of the
    whole is held in memory); the number of bytes written, checksum included."""
    digest = hashlib.sha256()
    size = 0

    def put(data: bytes) -> None:
        nonlocal size
        digest.update(data)
        out.write(data)
        size += len(data)

    header = {
        "format": FORMAT,
        "revision": state.revision,
        "compact_revision": state.compact_revision,
        "cluster_id": state.cluster_id,
        "member_id": state.member_id,
        "keys": len(state.kvs),
        "leases": len(state.leases),
    }
    put(MAGIC)
    put(_record(b"H", json.dumps(header, sort_keys=True).encode()))
    for kv in state.kvs:
        put(_record(b"K", kv_to_pb(kv).SerializeToString()))
    for lease_id, ttl, keys in state.leases:
        lease = rpc_pb2.LeaseTimeToLiveResponse(ID=lease_id, grantedTTL=ttl, keys=keys)
        put(_record(b"L", lease.SerializeToString()))
    put(_record(b"E", b""))
    put(bytes(-size % SECTOR))
    out.write(digest.digest())
    return size + CHECKSUM_SIZE


def encode(state: SnapshotState) -> bytes:
    """The snapshot file, checksum included."""
    buffer = io.BytesIO()
    write(buffer, state)
    return buffer.getvalue()


def chunks(data: bytes, size: int = CHUNK_SIZE):
    """(blob, remaining_bytes) pieces of a snapshot file, as etcd streams them:
    the data in chunks counting down to zero, then the checksum alone."""
    yield from file_chunks(io.BytesIO(data), len(data), size)


def file_chunks(f: BinaryIO, total: int, size: int = CHUNK_SIZE):
    """``chunks`` of a snapshot file being read from ``f`` (``total`` bytes)."""
    body = total - CHECKSUM_SIZE
    sent = 0
    while sent < body:
        blob = f.read(min(size, body - sent))
        if not blob:
            raise SnapshotError("snapshot file cut short")
        sent += len(blob)
        yield blob, body - sent
    yield f.read(CHECKSUM_SIZE), 0


def read_snapshot(data: bytes) -> SnapshotState:
    """Check and decode a snapshot file; SnapshotError if it is not one."""
    if len(data) < len(MAGIC) + CHECKSUM_SIZE or (len(data) - CHECKSUM_SIZE) % SECTOR:
        raise SnapshotError("not a raftkv snapshot: wrong size")
    body, checksum = data[:-CHECKSUM_SIZE], data[-CHECKSUM_SIZE:]
    if hashlib.sha256(body).digest() != checksum:
        raise SnapshotError("snapshot checksum mismatch")
    if not body.startswith(MAGIC):
        raise SnapshotError("not a raftkv snapshot: no magic")
    offset = len(MAGIC)
    header: dict | None = None
    kvs: list[KeyValue] = []
    leases: list[tuple[int, int, list[bytes]]] = []
    while True:
        if offset + _FRAME.size > len(body):
            raise SnapshotError("snapshot truncated")
        tag, length = _FRAME.unpack_from(body, offset)
        offset += _FRAME.size
        payload = body[offset:offset + length]
        if len(payload) != length:
            raise SnapshotError("snapshot truncated")
        offset += length
        try:
            if tag == b"H" and header is None:
                header = json.loads(payload)
            elif tag == b"K" and header is not None:
                kvs.append(kv_from_pb(kv_pb2.KeyValue.FromString(payload)))
            elif tag == b"L" and header is not None:
                lease = rpc_pb2.LeaseTimeToLiveResponse.FromString(payload)
                leases.append((lease.ID, lease.grantedTTL, list(lease.keys)))
            elif tag == b"E" and header is not None:
                break
            else:
                raise SnapshotError(f"unexpected snapshot record {tag!r}")
        except SnapshotError:
            raise
        except Exception as e:  # a damaged record: protobuf or JSON refused it
            raise SnapshotError(f"bad snapshot record {tag!r}: {e}") from None
    if any(body[offset:]):
        raise SnapshotError("garbage after the end of the snapshot")
    if header.get("format") != FORMAT or header.get("keys") != len(kvs) \
            or header.get("leases") != len(leases):
        raise SnapshotError("snapshot header does not match its records")
    return SnapshotState(header["revision"], header["compact_revision"], header["cluster_id"],
                         header["member_id"], kvs, leases)
