"""Whose data a data directory holds: the member, its cluster, the members it started with.

Written once, when a member first starts on an empty directory, and checked
on every start after:

- a directory that holds another member's data (copied or moved, or started
  with another peer URL) is refused;
- the voting members it started with are the recorded ones: as etcd does,
  ``--initial-cluster`` matters only on the first start, later the log and
  snapshots decide who the members are;
- the cluster id travels in every peer handshake, so members of different
  clusters refuse each other, and in every snapshot. A member that joined a
  running cluster learns it from its first peer.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zlib
from dataclasses import asdict, dataclass, field

from raftkv.raft.log_segments import log_exists
from raftkv.raft.storage import replace_file

log = logging.getLogger(__name__)

IDENTITY_FILE = "member.json"


class DataDirError(ValueError):
    """The data directory is not this member's, or cannot be read; the message says how to recover."""


def derive_cluster_id(peer_addresses: list[str], token: str = "") -> int:
    """A 63-bit cluster id from the members a cluster starts with (and a
    token, as etcd's --initial-cluster-token, so that two clusters started
    on the same addresses differ)."""
    text = ",".join(sorted(peer_addresses)) + "/" + token
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


@dataclass
class DataDirIdentity:
    member: str                     # the member's peer address
    cluster_id: int                 # 0: not known yet (joined a running cluster)
    voters: list[str] = field(default_factory=list)
    path: str = ""

    def record(self) -> None:
        body = {k: v for k, v in asdict(self).items() if k != "path"}
        body["crc"] = zlib.crc32(json.dumps(body, sort_keys=True).encode())
        replace_file(self.path, json.dumps(body, sort_keys=True).encode())

    def learn_cluster_id(self, cluster_id: int) -> None:
        if self.cluster_id == 0 and cluster_id:
            self.cluster_id = cluster_id
            self.record()
            log.info("joined cluster cluster_id=%x", cluster_id)


def _load(path: str) -> DataDirIdentity:
    try:
        with open(path, "rb") as f:
            body = json.loads(f.read())
        crc = body.pop("crc")
        if crc != zlib.crc32(json.dumps(body, sort_keys=True).encode()):
            raise ValueError("checksum mismatch")
        return DataDirIdentity(str(body["member"]), int(body["cluster_id"]),
                               [str(v) for v in body["voters"]], path)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise DataDirError(f"{path}: cannot be read ({e}); remove this member's data directory "
                           "and add it to the cluster again") from None


def open_identity(data_dir: str, address: str, voters: list[str], cluster_id: int) -> DataDirIdentity:
    """The identity recorded in ``data_dir``, checked against this member's
    ``address``; recorded from the arguments when the directory is new."""
    path = os.path.join(data_dir, IDENTITY_FILE)
    if os.path.exists(path):
        identity = _load(path)
        if identity.member != address:
            raise DataDirError(
                f"{data_dir} holds the data of the member at {identity.member}, not of this member "
                f"({address}); start that member on it, or give this member an empty data directory")
        if sorted(voters) != sorted(identity.voters):
            log.info("ignoring --initial-cluster: the data directory already holds a member "
                     "(recorded members=%s, given=%s)", ",".join(identity.voters), ",".join(voters))
        return identity
    if log_exists(data_dir):
        raise DataDirError(f"{data_dir} holds a Raft log but no {IDENTITY_FILE}: it was made by an older raftkv "
                           "or damaged; remove this member's data directory and add it to the cluster again")
    identity = DataDirIdentity(address, cluster_id, sorted(voters), path)
    identity.record()
    return identity
