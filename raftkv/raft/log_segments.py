"""The files a Raft log is kept in: numbered segments, as etcd's WAL.

A log is a run of segment files ``<base>.<8-digit sequence>``; only the last
one is written to. Entries that a snapshot covers go with whole segments
(a file removed, nothing rewritten), and a new segment is started once the
last one outgrows its size. A log written before segments existed (one file
named ``<base>``) becomes the first segment when it is opened.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading

from raftkv.raft.storage import DurableFile, StorageFailure, fsync_dir, remove_file, rename_durably

log = logging.getLogger(__name__)

LOG_NAME = "raft.log"  # in a member's data directory
SEGMENT_BYTES = 4 << 20
_SEQUENCE_DIGITS = 8


def segment_path(base: str, sequence: int) -> str:
    return f"{base}.{sequence:0{_SEQUENCE_DIGITS}d}"


def segment_sequences(base: str) -> list[int]:
    """The sequence numbers of the segments of the log at ``base``, in order."""
    directory, name = os.path.split(os.path.abspath(base))
    pattern = re.compile(re.escape(name) + r"\.(\d{%d})$" % _SEQUENCE_DIGITS)
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for n in names if (m := pattern.match(n)))


def segment_paths(base: str) -> list[str]:
    """The segment files of the log at ``base``, oldest first."""
    return [segment_path(base, s) for s in segment_sequences(base)]


def log_path(data_dir: str) -> str:
    """The base path of a member's log (its segments are named after it)."""
    return os.path.join(data_dir, LOG_NAME)


def log_exists(data_dir: str) -> bool:
    base = log_path(data_dir)
    return os.path.exists(base) or bool(segment_sequences(base))


def adopt_single_file_log(base: str) -> None:
    """A log from before segments (the file ``base``) becomes segment 0."""
    if os.path.isfile(base) and not segment_sequences(base):
        rename_durably(base, segment_path(base, 0))


class SegmentSet:
    """The segment files of one log, the last one open for appending."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.directory = os.path.dirname(os.path.abspath(base))
        self.sequences = segment_sequences(base)
        self.files: dict[int, DurableFile] = {}
        self._cleaner: _Cleaner | None = None

    def open(self, sequence: int) -> DurableFile:
        file = self.files.get(sequence)
        if file is None:
            file = self.files[sequence] = DurableFile(segment_path(self.base, sequence))
        return file

    @property
    def last(self) -> int:
        return self.sequences[-1]

    def create(self, header: bytes) -> int:
        """Start a segment after the last one, durable (file and name) before it is used."""
        sequence = self.sequences[-1] + 1 if self.sequences else 0
        file = self.open(sequence)
        file.truncate(0)
        file.append(header, 0)
        file.sync()
        self._sync_directory()
        self.sequences.append(sequence)
        return sequence

    def remove(self, sequences: list[int], durably: bool, garbage: object = None) -> None:
        """Remove segments in the order given. ``durably``: at once, and on
        disk when this returns (a power loss cannot bring them back); else
        in the background, with ``garbage`` (what is dropped with them, freed
        there too): unlinking megabytes and freeing many entries would hold
        up the tick, and a removal lost to a crash only leaves the log
        starting earlier."""
        for sequence in sequences:
            self.close_file(sequence)
            self.sequences.remove(sequence)
        paths = [segment_path(self.base, s) for s in sequences]
        if not durably:
            if self._cleaner is None:
                self._cleaner = _Cleaner()
            self._cleaner.put((paths, garbage))
            return
        self.wait_for_removals()
        for path in paths:
            remove_file(path)
        if paths:
            self._sync_directory()

    def _sync_directory(self) -> None:
        try:
            fsync_dir(self.directory)
        except OSError as e:
            raise StorageFailure.of(e, self.directory) from e

    def wait_for_removals(self) -> None:
        if self._cleaner is not None:
            self._cleaner.drain()

    def close_file(self, sequence: int) -> None:
        """Close a segment no longer written to (it must have been synced)."""
        file = self.files.pop(sequence, None)
        if file is not None:
            file.close()

    def sync_dirty(self) -> None:
        for file in self.files.values():
            file.sync()

    @property
    def dirty(self) -> bool:
        return any(file.dirty for file in self.files.values())

    def close(self) -> None:
        if self._cleaner is not None:
            self._cleaner.stop()
            self._cleaner = None
        for file in self.files.values():
            file.close()
        self.files.clear()


class _Cleaner:
    """A thread that removes segment files handed to it, in order."""

    def __init__(self) -> None:
        self._work: queue.Queue = queue.Queue()
        threading.Thread(target=self._run, name="raftkv-log-cleaner", daemon=True).start()

    def put(self, item: tuple[list[str], object]) -> None:
        self._work.put(item)

    def drain(self) -> None:
        self._work.join()

    def stop(self) -> None:
        """Finish what was handed over, then end the thread."""
        self._work.put(None)
        self._work.join()

    def _run(self) -> None:
        while (item := self._work.get()) is not None:
            paths, garbage = item
            try:
                for path in paths:
                    remove_file(path)
            except StorageFailure as e:  # kept until the next trim after a restart
                log.warning("an old log segment could not be removed error=%s", e)
            finally:
                del garbage, item
                self._work.task_done()
        self._work.task_done()
