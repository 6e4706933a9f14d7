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

The entries are kept in segment files (``log_segments``). Record format:
<u32 length><u64 index><u64 term><u32 crc32> command. When the log is
opened, a torn tail (a crash in the middle of the last write: nothing valid
after the first bad record of the last segment) is cut off; a bad record
with valid records after it, or in a segment other segments follow, is
damage, not a crash, and the journal refuses to open (``CorruptLog``), as
does a term/vote record whose checksum fails.

A failed write or fsync (a full disk, an I/O error) raises ``StorageFailure``:
the member must stop taking part, since what it would promise next is not
on disk.
"""

from __future__ import annotations

import json
import logging
import struct
import time
import zlib
from collections.abc import Sequence

from raftkv.raft import failpoints
from raftkv.raft.stats import DurationHistogram
from raftkv.raft.log_segments import SEGMENT_BYTES, SegmentSet, adopt_single_file_log, segment_path
from raftkv.raft.storage import StorageFailure, replace_file

log = logging.getLogger(__name__)

MAGIC = b"RAFTKV-LOG-1\n"
_HEADER = struct.Struct("<IQQI")

RECOVERY_HINT = ("this member's data cannot be trusted: remove it from the cluster "
                 "(raftkv member remove), delete its data directory, and add it again "
                 "(raftkv member add); it then copies the data from the others")


class CorruptLog(ValueError):
    """Damage in the log or its term/vote record that a crash cannot explain."""


def _crc(index: int, term: int, command: bytes) -> int:
    return zlib.crc32(command, zlib.crc32(struct.pack("<QQ", index, term)))


def _record_at(data: bytes, offset: int) -> tuple[bytes, int, int, int] | None:
    """The valid record at ``offset`` as (command, index, term, next offset), or None."""
    if offset + _HEADER.size > len(data):
        return None
    length, index, term, crc = _HEADER.unpack_from(data, offset)
    start = offset + _HEADER.size
    if start + length > len(data):
        return None
    command = data[start:start + length]
    if _crc(index, term, command) != crc:
        return None
    return command, index, term, start + length


def _meta_crc(meta: dict) -> int:
    return zlib.crc32(json.dumps({k: v for k, v in meta.items() if k != "crc"}, sort_keys=True).encode())


class DurableJournal:
    def __init__(self, path: str, sync_durations: DurationHistogram | None = None,
                 segment_bytes: int = SEGMENT_BYTES) -> None:
        self.path = path
        self.sync_durations = sync_durations if sync_durations is not None else DurationHistogram()
        self.segment_bytes = segment_bytes
        self._meta_path = path + ".meta"
        self._entries: list[tuple[bytes, int, int]] = []
        # each entry's (segment, offset, position): the position counts the
        # bytes of every record added before it, so sizes need no sums
        self._locations: list[tuple[int, int, int]] = []
        self._end = 0  # where the next record goes in the last segment
        self._added_bytes = 0
        self._meta = self._load_meta()
        self._meta_dirty = False
        self._pending = bytearray()
        self._pending_offset = 0
        self.last_sync_seconds = 0.0  # the last sync's fsync (0 when nothing needed one)
        adopt_single_file_log(path)
        self._segments = SegmentSet(path)
        self._load()

    # ---- loading ------------------------------------------------------------

    def _load_meta(self) -> dict:
        try:
            with open(self._meta_path, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            return {}
        try:
            meta = json.loads(raw)
            ok = isinstance(meta, dict) and meta.get("crc", _meta_crc(meta)) == _meta_crc(meta)
        except ValueError:
            ok = False
        if not ok:
            raise CorruptLog(f"{self._meta_path}: the term and vote record is damaged "
                             f"(checksum mismatch); {RECOVERY_HINT}")
        return meta

    def _load(self) -> None:
        sequences = list(self._segments.sequences)
        if not sequences:
            self._segments.create(MAGIC)
            self._end = len(MAGIC)
            return
        for sequence in sequences:
            self._end = self._load_segment(sequence, last=sequence == sequences[-1])
        last_term = self._entries[-1][2] if self._entries else 0
        if last_term > 0 and "term" not in self._meta:
            raise CorruptLog(f"{self._meta_path}: missing, though {self.path} holds entries of term "
                             f"{last_term} (the vote this member gave is lost); {RECOVERY_HINT}")

    def _load_segment(self, sequence: int, last: bool) -> int:
        """Read one segment's entries; returns where its valid records end."""
        path = segment_path(self.path, sequence)
        file = self._segments.open(sequence)
        data = file.read_all()
        if not data.startswith(MAGIC):
            if last and MAGIC.startswith(data):  # a crash while the segment was being started
                file.truncate(0)
                file.append(MAGIC, 0)
                file.sync()
                return len(MAGIC)
            raise CorruptLog(f"{path}: not a raftkv log (wrong header at byte 0); {RECOVERY_HINT}")
        offset = len(MAGIC)
        while (record := _record_at(data, offset)) is not None:
            command, index, term, end = record
            if self._entries and index != self._entries[-1][1] + 1:
                raise CorruptLog(f"{path}: entry {index} at byte {offset} does not follow entry "
                                 f"{self._entries[-1][1]}; {RECOVERY_HINT}")
            self._entries.append((command, index, term))
            self._locations.append((sequence, offset, self._added_bytes))
            self._added_bytes += end - offset
            offset = end
        if offset < len(data):
            if not last:
                raise CorruptLog(f"{path}: damaged record at byte {offset} (checksum mismatch) in a segment "
                                 f"that later segments follow; {RECOVERY_HINT}")
            self._check_torn_tail(path, data, offset)
            log.warning("log tail cut (a write a crash interrupted) path=%s kept_bytes=%d dropped_bytes=%d",
                        path, offset, len(data) - offset)
            file.truncate(offset)
            file.sync()
        if not last:
            self._segments.close_file(sequence)
        return offset

    @staticmethod
    def _check_torn_tail(path: str, data: bytes, bad: int) -> None:
        """Only the last write can be torn: a valid record after the bad one
        means the damage is in the middle of the log."""
        for offset in range(bad + 1, len(data) - _HEADER.size + 1):
            if _record_at(data, offset) is not None:
                raise CorruptLog(f"{path}: damaged record at byte {bad} (checksum mismatch) with "
                                 f"valid records after it, at byte {offset}; {RECOVERY_HINT}")

    # ---- pysyncobj's journal interface ---------------------------------------

    def add(self, command: bytes, idx: int, term: int) -> None:
        command = bytes(command)
        if not self._pending:
            if self._end >= self.segment_bytes:
                self._start_segment()
            self._pending_offset = self._end
        self._pending += _HEADER.pack(len(command), idx, term, _crc(idx, term, command))
        self._pending += command
        self._locations.append((self._segments.last, self._end, self._added_bytes))
        self._entries.append((command, idx, term))
        self._added_bytes += _HEADER.size + len(command)
        self._end = self._pending_offset + len(self._pending)

    def _start_segment(self) -> None:
        """Go on in a new segment; the full one is synced first, so that only
        the last segment can ever end in a torn write."""
        self._segments.open(self._segments.last).sync()
        sequence = self._segments.create(MAGIC)
        for older in self._segments.sequences[:-1]:
            self._segments.close_file(older)
        self._end = len(MAGIC)
        log.debug("log segment started path=%s", segment_path(self.path, sequence))

    def _write_pending(self) -> None:
        """Entries are buffered until the group is synced: one write, one fsync."""
        if self._pending:
            self._segments.open(self._segments.last).append(bytes(self._pending), self._pending_offset)
            self._pending.clear()

    def clear(self) -> None:
        self._truncate_at(0)

    def deleteEntriesFrom(self, entryFrom: int) -> None:  # noqa: N802 (pysyncobj's name)
        if entryFrom < len(self._entries):
            self._truncate_at(entryFrom)

    def deleteEntriesTo(self, entryTo: int) -> None:  # noqa: N802
        """Drop the first ``entryTo`` entries (they are in a snapshot now):
        the segments that hold nothing else are removed, nothing is rewritten.
        The segment that holds the first entry kept keeps the ones before it
        until it is removed in turn; opening the log reads them back, and
        ``restart_from`` drops them again."""
        if entryTo <= 0:
            return
        dropped = (self._entries[:entryTo], self._locations[:entryTo])
        del self._entries[:entryTo]
        del self._locations[:entryTo]
        first_kept = self._locations[0][0] if self._locations else self._segments.last
        # oldest first: a crash in between leaves the log starting later, never with a gap
        self._segments.remove([s for s in self._segments.sequences if s < first_kept], durably=False,
                              garbage=dropped)

    def wait_for_removals(self) -> None:
        """Wait until the segments trimmed off are removed from the disk."""
        self._segments.wait_for_removals()

    def restart_from(self, entries: Sequence[tuple[bytes, int, int]]) -> None:
        """Make the log start with ``entries`` (a snapshot's last two):
        what the log holds after them is kept when the log holds them too,
        else the log is replaced by them. A log that starts after the
        first of them has lost entries the snapshot does not cover."""
        first = entries[0][1]
        if self._entries and self._entries[0][1] > first:
            raise CorruptLog(f"{self.path}: starts at entry {self._entries[0][1]}, after the snapshot's "
                             f"entry {first}: the snapshot that covered the entries before it is "
                             f"missing or older; {RECOVERY_HINT}")
        position = first - self._entries[0][1] if self._entries else 0
        mine = [tuple(e) for e in self._entries[position:position + len(entries)]]
        if mine == [tuple(e) for e in entries]:
            self.deleteEntriesTo(position)
        else:
            self._truncate_at(0)
            for entry in entries:
                self.add(*entry)
            self.sync()

    def __getitem__(self, item):
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size_bytes(self) -> int:
        """The size of the entries the log holds, with those still to be written."""
        return self._added_bytes - self._locations[0][2] if self._locations else 0

    def close(self) -> None:
        """Write what is buffered and close the file."""
        try:
            self.sync()  # writes what is buffered
        except StorageFailure as e:
            log.error("the log could not be synced while closing path=%s error=%s", self.path, e)
        finally:
            self._segments.close()

    def _destroy(self) -> None:  # pysyncobj's name for close
        self.close()

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
        self.last_sync_seconds = 0.0
        if not (self._pending or self._segments.dirty):
            return
        if self._pending:
            failpoints.hit("journal-before-write")
        self._write_pending()
        failpoints.hit("journal-before-sync")
        began = time.monotonic()
        self._segments.sync_dirty()
        self.last_sync_seconds = time.monotonic() - began
        self.sync_durations.observe(self.last_sync_seconds)
        failpoints.hit("journal-after-sync")

    @property
    def unsynced(self) -> bool:
        return bool(self._pending) or self._segments.dirty

    def _truncate_at(self, position: int) -> None:
        self._write_pending()
        if position == 0:
            # a new segment: the old ones may hold entries from before the
            # first one kept, which the next entry added would not follow
            old = list(self._segments.sequences)
            self._segments.create(MAGIC)
            # newest first and durably: a crash leaves a prefix of the old log,
            # and no old segment can come back after the new one is written
            self._segments.remove(old[::-1], durably=True)
            self._end = len(MAGIC)
        else:
            sequence, offset, self._added_bytes = self._locations[position]
            self._segments.remove([s for s in self._segments.sequences if s > sequence][::-1], durably=True)
            self._segments.open(sequence).truncate(offset)
            self._end = offset
        del self._entries[position:]
        del self._locations[position:]

    def _store_meta(self) -> None:
        self._meta["crc"] = _meta_crc(self._meta)
        replace_file(self._meta_path, json.dumps(self._meta, sort_keys=True).encode())
        self._meta_dirty = False
