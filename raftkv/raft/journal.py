"""A Raft log and term/vote record that are durable before anyone relies on them.

Implements the journal interface pysyncobj 0.3.17 expects (add, clear,
deleteEntriesFrom/To, indexing, commit index, term and vote) with two rules
pysyncobj's own file journal does not keep:

- term and vote are fsynced (file and directory) before ``setCurrentTerm``
  returns, so no vote or append reply can leave the member before they are
  durable;
- entries are written at once but fsynced in groups by ``sync()``, which the
  member calls before any message leaves it and at the end of every tick,
  i.e. before a follower acknowledges an append and before the leader counts
  its own copy toward commit.

Record format: <u32 length><u64 index><u64 term><u32 crc32> command. A torn
or corrupt tail (a crash mid-write) is cut off when the file is opened.
"""

from __future__ import annotations

import json
import logging
import struct
import zlib

from raftkv.raft.storage import DurableFile, replace_file

log = logging.getLogger(__name__)

MAGIC = b"RAFTKV-LOG-1\n"
_HEADER = struct.Struct("<IQQI")


def _crc(index: int, term: int, command: bytes) -> int:
    return zlib.crc32(command, zlib.crc32(struct.pack("<QQ", index, term)))


class DurableJournal:
    def __init__(self, path: str) -> None:
        self.path = path
        self._meta_path = path + ".meta"
        self._file = DurableFile(path)
        self._entries: list[tuple[bytes, int, int]] = []
        self._offsets: list[int] = []
        self._end = 0
        self._meta = self._load_meta()
        self._meta_dirty = False
        self.before_compaction = None  # called before entries covered by a snapshot are dropped
        self._pending = bytearray()
        self._pending_offset = 0
        self._load()

    # ---- loading ------------------------------------------------------------

    def _load_meta(self) -> dict:
        try:
            with open(self._meta_path, "rb") as f:
                return json.loads(f.read())
        except FileNotFoundError:
            return {}

    def _load(self) -> None:
        data = self._file.read_all()
        if not data:
            self._file.append(MAGIC, 0)
            self._file.sync()
            self._end = len(MAGIC)
            return
        if not data.startswith(MAGIC):
            raise ValueError(f"{self.path}: not a raftkv log")
        offset = len(MAGIC)
        while offset + _HEADER.size <= len(data):
            length, index, term, crc = _HEADER.unpack_from(data, offset)
            start = offset + _HEADER.size
            command = data[start:start + length]
            if len(command) < length or _crc(index, term, command) != crc:
                break
            self._entries.append((command, index, term))
            self._offsets.append(offset)
            offset = start + length
        if offset < len(data):
            log.warning("log tail cut path=%s kept_bytes=%d dropped_bytes=%d",
                        self.path, offset, len(data) - offset)
            self._file.truncate(offset)
            self._file.sync()
        self._end = offset

    # ---- pysyncobj's journal interface ---------------------------------------

    def add(self, command: bytes, idx: int, term: int) -> None:
        command = bytes(command)
        if not self._pending:
            self._pending_offset = self._end
        self._pending += _HEADER.pack(len(command), idx, term, _crc(idx, term, command))
        self._pending += command
        self._offsets.append(self._end)
        self._entries.append((command, idx, term))
        self._end = self._pending_offset + len(self._pending)

    def _write_pending(self) -> None:
        """Entries are buffered until the group is synced: one write, one fsync."""
        if self._pending:
            self._file.append(bytes(self._pending), self._pending_offset)
            self._pending.clear()

    def clear(self) -> None:
        # pysyncobj clears the log when it installs a snapshot from the
        # leader: the snapshot must be durable before the log is gone
        if self.before_compaction is not None:
            self.before_compaction()
        self._truncate_at(0)

    def deleteEntriesFrom(self, entryFrom: int) -> None:  # noqa: N802 (pysyncobj's name)
        if entryFrom < len(self._entries):
            self._truncate_at(entryFrom)

    def deleteEntriesTo(self, entryTo: int) -> None:  # noqa: N802
        """Drop the first ``entryTo`` entries (they are in a snapshot now)."""
        if self.before_compaction is not None:
            self.before_compaction()
        self._pending.clear()  # the rewrite below covers every entry
        kept = self._entries[entryTo:]
        body = bytearray(MAGIC)
        offsets = []
        for command, idx, term in kept:
            offsets.append(len(body))
            body += _HEADER.pack(len(command), idx, term, _crc(idx, term, command)) + command
        self._file.close()
        replace_file(self.path, bytes(body))
        self._file = DurableFile(self.path)
        self._entries = kept
        self._offsets = offsets
        self._end = len(body)

    def __getitem__(self, item):
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    def _destroy(self) -> None:
        self.sync()  # writes what is buffered
        self._file.close()

    def flush(self) -> None:
        self.sync()

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:  # noqa: N802
        # Safe to persist lazily: a lower commit index after a restart only
        # delays applying entries the leader will confirm again.
        self._meta["commit_index"] = raftCommitIndex
        self._meta_dirty = True

    def getRaftCommitIndex(self) -> int:  # noqa: N802
        return self._meta.get("commit_index", 1)

    def setCurrentTerm(self, term: int, votedForNodeId) -> None:  # noqa: N802
        self._meta["term"] = term
        self._meta["voted_for"] = votedForNodeId
        self._store_meta()
        # one line per durable change: tests audit that no term has two votes
        log.info("term persisted term=%d voted_for=%s", term, votedForNodeId)

    def getCurrentTerm(self) -> int:  # noqa: N802
        return self._meta.get("term", 0)

    def getVotedForNodeId(self):  # noqa: N802
        return self._meta.get("voted_for")

    def onOneSecondTimer(self) -> None:  # noqa: N802
        if self._meta_dirty:
            self._store_meta()

    # ---- durability -----------------------------------------------------------

    def sync(self) -> None:
        """Make every entry added so far durable (one write and one fsync for the group)."""
        self._write_pending()
        self._file.sync()

    @property
    def unsynced(self) -> bool:
        return bool(self._pending) or self._file.dirty

    def _truncate_at(self, position: int) -> None:
        self._write_pending()
        offset = self._offsets[position] if position < len(self._offsets) else self._end
        if position == 0:
            offset = len(MAGIC)
        self._file.truncate(offset)
        del self._entries[position:]
        del self._offsets[position:]
        self._end = offset

    def _store_meta(self) -> None:
        replace_file(self._meta_path, json.dumps(self._meta, sort_keys=True).encode())
        self._meta_dirty = False
