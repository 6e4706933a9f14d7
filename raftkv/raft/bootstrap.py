"""A data directory made from a state, for a member that starts from it (snapshot restore).

The directory holds what a one-member cluster would hold right after a Raft
snapshot of that state: the identity, a snapshot at index 2 and a log that
starts with the two entries it covers.
"""

from __future__ import annotations

import os

from raftkv.mvcc.store import KVStore
from raftkv.raft.identity import derive_cluster_id, open_identity
from raftkv.raft.journal import DurableJournal
from raftkv.raft.log_segments import log_path
from raftkv.raft.membership import MembershipTable
from raftkv.raft.snapshot import SnapshotMeta, state_records, write_snapshot
from raftkv.raft.storage import fsync_dir

_NO_OP = bytes([1])  # pysyncobj's no-op entry


def write_restored_data_dir(data_dir: str, address: str, store_state: dict, member: dict) -> None:
    """Make ``data_dir`` (new or empty) the data of a one-member cluster at
    ``address`` whose state is ``store_state`` (KVStore.snapshot's form) and
    whose membership table holds ``member`` (a MemberRecord as a dict)."""
    os.makedirs(data_dir, exist_ok=True)
    if os.listdir(data_dir):
        raise FileExistsError(f"{data_dir} is not empty")
    identity = open_identity(data_dir, address, [address], derive_cluster_id([address]))
    store = KVStore()
    store.restore(store_state)
    membership = MembershipTable()
    membership.apply(member)
    entries = [(_NO_OP, 1, 0), (_NO_OP, 2, 1)]
    meta = SnapshotMeta(2, 1, entries, [address], identity.cluster_id)
    write_snapshot(os.path.join(data_dir, "snapshot"), meta, state_records(store, membership))
    journal = DurableJournal(log_path(data_dir))
    try:
        for entry in entries:
            journal.add(*entry)
        journal.setRaftCommitIndex(2)
        journal.setCurrentTerm(1, None)
        journal.sync()
    finally:
        journal.close()
    fsync_dir(data_dir)
