"""Snapshots on a member: the data directory opened and checked at start,
snapshots of its own written by a child process and put in place only when
complete (then the log is trimmed), and the leader's snapshot received in
pieces, checked whole, and installed."""

from __future__ import annotations

import glob
import logging
import os
import threading
import time
from collections.abc import Callable

from raftkv.mvcc.store import KVStore, StoreLimits
from raftkv.raft import failpoints
from raftkv.raft.engine import Engine
from raftkv.raft.identity import DataDirError
from raftkv.raft.journal import CorruptLog, DurableJournal
from raftkv.raft.membership import MembershipTable
from raftkv.raft.snapshot import (
    SnapshotError,
    SnapshotMeta,
    load_snapshot,
    peek_meta,
    state_records,
    write_snapshot,
)
from raftkv.raft.log_segments import log_path
from raftkv.raft.snapshot_writer import SnapshotWriter, WriterState
from raftkv.raft.storage import StorageFailure, install_file

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "snapshot"
_RECEIVED_SNAPSHOT = "snapshot.received.tmp"


class Snapshotting(Engine):
    def _init_snapshots(self) -> None:
        self._snapshot_path = os.path.join(self.data_dir, SNAPSHOT_FILE)
        self._writer = SnapshotWriter()
        self._writing: SnapshotMeta | None = None
        self._last_snapshot_at = self._clock()
        self._snapshot_retry_at = 0.0
        self._receiving: tuple[object, int] | None = None  # (leader, fd) of a snapshot being received
        self._loading: _ReceivedLoad | None = None  # a received snapshot's state being built apart
        self._snapshot_bytes = self._size_of(self._snapshot_path)

    # ---- the data directory -----------------------------------------------------

    def _open_storage(self) -> tuple[DurableJournal, SnapshotMeta | None]:
        """Open the log and the snapshot, check them against each other and
        this member's identity, load the snapshot's state, and trim the log
        to start where the snapshot ends. Raises DataDirError (naming the file)
        for anything that is not this member's intact data."""
        for stale in glob.glob(os.path.join(self.data_dir, "snapshot.*.tmp")):
            os.remove(stale)  # a snapshot a crash interrupted, never in use
        try:
            journal = DurableJournal(log_path(self.data_dir), self.stats.fsync, self.config.log_segment_bytes)
        except CorruptLog as e:
            raise DataDirError(str(e)) from None
        try:
            meta = None
            if os.path.exists(self._snapshot_path):
                try:
                    with self.lock:
                        meta = load_snapshot(self._snapshot_path, self.store, self.membership)
                except SnapshotError as e:
                    raise DataDirError(f"{e}: the snapshot is damaged; this member's data cannot be "
                                       "trusted. Remove it from the cluster (raftkv member remove), delete "
                                       "its data directory, and add it again (raftkv member add)") from None
                if self.identity.cluster_id and meta.cluster_id and meta.cluster_id != self.identity.cluster_id:
                    raise DataDirError(f"{self._snapshot_path}: a snapshot of cluster {meta.cluster_id:x}, "
                                       f"not of this member's cluster {self.identity.cluster_id:x}")
                journal.restart_from(meta.entries)
                self._leases_restored()
            elif len(journal) and journal[0][1] > 1:
                raise DataDirError(f"{self._snapshot_path}: missing, though {journal.path} starts at entry "
                                   f"{journal[0][1]}: the entries before it are lost. Remove this member from "
                                   "the cluster (raftkv member remove), delete its data directory, and add it "
                                   "again (raftkv member add)")
        except CorruptLog as e:
            journal.close()
            raise DataDirError(str(e)) from None
        except BaseException:
            journal.close()
            raise
        return journal, meta

    def _finish_start(self) -> None:
        """On the first tick: pysyncobj starts from index 1; a member restarted
        from a snapshot has applied everything the snapshot covers."""
        self._snapshot_loaded_already()
        meta = self._startup_snapshot
        if meta is not None:
            self._adopt_snapshot(meta)
        self._startup_snapshot = None

    def _adopt_snapshot(self, meta: SnapshotMeta) -> None:
        """Raft's indexes and configuration after the state became the snapshot's."""
        self._set_applied_index(meta.index)
        ended = self._end_proposals_through(meta.index)
        if ended:
            log.info("proposals ended by a snapshot count=%d index=%d", ended, meta.index)
        if self.commit_index < meta.index:
            self._set_commit_index(meta.index)
            self._journal.setRaftCommitIndex(meta.index)
        self._set_commit_index(min(self.commit_index, self._last_log_index()))
        self._update_configuration([v for v in meta.voters if v != self.address])

    # ---- snapshots of its own --------------------------------------------------------

    def _maybe_snapshot(self) -> None:
        state = self._writer.poll()
        if state is WriterState.DONE:
            self._install_written_snapshot()
        elif state is WriterState.FAILED:
            self._discard(self._writer.path)
            self._writing = None
            self._snapshot_retry_at = self._clock() + 5.0  # e.g. a full disk: not on every tick
        if self._writer.busy or self._clock() < self._snapshot_retry_at:
            return
        forced = self._take_compaction_request()
        due = (len(self._journal) > self.config.snapshot_min_entries
               or self._journal.size_bytes > max(self.config.snapshot_log_bytes, self._snapshot_bytes // 2)
               or self._clock() - self._last_snapshot_at > self.config.snapshot_min_seconds)
        if not (due or forced):
            return
        self._last_snapshot_at = self._clock()
        applied = self.applied_index
        entries = self._entries(applied - 1, 2)
        if len(entries) < 2 or applied <= self._journal[0][1] + 1:
            return  # nothing new since the last snapshot
        meta = SnapshotMeta(applied, entries[1][2], [tuple(e) for e in entries],
                            sorted(self.voting_addresses()), self.identity.cluster_id)
        path = os.path.join(self.data_dir, f"snapshot.{applied}.tmp")
        self._discard(path)
        store, membership = self.store, self.membership
        if self._writer.start(path, lambda p: write_snapshot(p, meta, state_records(store, membership))):
            self._writing = meta
            failpoints.hit("snapshot-mid-write")

    def _install_written_snapshot(self) -> None:
        """The child wrote and fsynced the snapshot: put it in place, then
        drop the log entries it covers (in that order, so a crash between
        the two leaves a snapshot and a log that still overlap)."""
        meta, self._writing = self._writing, None
        began = time.perf_counter()
        failpoints.hit("snapshot-before-install")
        install_file(self._writer.path, self._snapshot_path)
        installed = time.perf_counter()
        self._snapshot_bytes = self._size_of(self._snapshot_path)
        failpoints.hit("snapshot-before-trim")
        self._delete_entries_to(meta.index - 1)
        # a follower being sent the previous file starts again with this one
        for node in self._voters() | self._learner_nodes():
            self._cancel_snapshot_transmission(node)
        log.info("snapshot written index=%d term=%d log_entries=%d install_ms=%d trim_ms=%d", meta.index, meta.term,
                 len(self._journal), (installed - began) * 1000, (time.perf_counter() - installed) * 1000)

    # ---- the leader's snapshot, received -------------------------------------------

    @property
    def loading_snapshot(self) -> bool:
        """Whether a received snapshot's state is being built (the member
        follows its leader meanwhile, but does not answer its appends)."""
        return self._loading is not None

    def _on_snapshot_chunk(self, node, chunk) -> None:
        """A piece of the leader's snapshot file (pysyncobj sends the file in
        chunks). Once it is whole, its state is built apart from the member's,
        in a thread of its own (``_ReceivedLoad``): the tick goes on meanwhile,
        so this member keeps hearing its leader and answering votes. Nothing
        is replaced until the whole file has been read and checked."""
        if chunk is None or self._loading is not None:
            return  # while one loads, the leader waits for its answer
        data, first, last = chunk
        path = os.path.join(self.data_dir, _RECEIVED_SNAPSHOT)
        if first:
            self._close_received()
            self._receiving = (node, os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644))
        if self._receiving is None or self._receiving[0] != node:
            return  # its beginning was missed: the leader sends it again
        fd = self._receiving[1]
        try:
            os.write(fd, data)
            if not last:
                return
            os.fsync(fd)
        except OSError as e:
            self._close_received()
            raise StorageFailure.of(e, path) from e
        self._close_received()
        try:
            meta = peek_meta(path)
        except SnapshotError as e:
            log.error("received snapshot refused leader=%s error=%s", getattr(node, "id", node), e)
            self._discard(path)
            return
        if meta.index <= self.applied_index:
            self._already_applied(node, path, meta)
            return
        self._loading = _ReceivedLoad(node, path, self.identity.cluster_id, self.config.limits,
                                      lambda load: self._submit(lambda: self._install_received(load)))

    def _install_received(self, load: _ReceivedLoad) -> None:
        """On the tick, once the received snapshot's state is built: put it
        in place of the member's."""
        if self._loading is not load:
            return  # the member closed meanwhile
        self._loading = None
        node, path, meta = load.node, load.path, load.meta
        if load.error is not None or meta is None:
            log.error("received snapshot refused leader=%s error=%s", getattr(node, "id", node), load.error)
            self._discard(path)
            return
        if self.is_leader:
            # elected while it loaded (its old leader gone): its own log stands
            log.info("received snapshot dropped: this member leads now index=%d", meta.index)
            self._discard(path)
            return
        if meta.index <= self.applied_index:
            self._already_applied(node, path, meta)
            return
        failpoints.hit("received-snapshot-before-install")
        self._writer.abandon()  # a snapshot of our own older state must not replace this one
        self._discard(self._writer.path)
        self._writing = None
        with self.lock:
            self.store.take_state_of(load.store)
            self.membership.restore(load.membership.snapshot())
        self._leases_restored()
        install_file(path, self._snapshot_path)
        self._snapshot_bytes = self._size_of(self._snapshot_path)
        failpoints.hit("received-snapshot-before-trim")
        self._journal.restart_from(meta.entries)
        self._adopt_snapshot(meta)
        log.info("installed the leader's snapshot index=%d term=%d", meta.index, meta.term)
        self._send_next_index(node, meta.index + 1, success=True)

    def _already_applied(self, node, path: str, meta: SnapshotMeta) -> None:
        """A snapshot sent again on an answer from before the last install:
        this member has it all, and going back to it would apply (and
        announce) revisions twice. Its leader hears where its log goes on."""
        log.info("received snapshot already applied index=%d applied=%d", meta.index, self.applied_index)
        self._discard(path)
        self._send_next_index(node, self.applied_index + 1, success=True)

    def _stop_loading(self) -> None:
        self._loading = None

    def _close_received(self) -> None:
        if self._receiving is not None:
            os.close(self._receiving[1])
            self._receiving = None

    @staticmethod
    def _size_of(path: str) -> int:
        try:
            return os.path.getsize(path)
        except FileNotFoundError:
            return 0

    @staticmethod
    def _discard(path: str | None) -> None:
        if path:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass


class _ReceivedLoad:
    """A received snapshot file read, checked and built into a store and a
    membership table of its own, in a thread; ``done(self)`` is called from
    that thread at the end, with ``error`` set if the file was refused."""

    def __init__(self, node, path: str, cluster_id: int, limits: StoreLimits,
                 done: Callable[[_ReceivedLoad], None]) -> None:
        self.node, self.path = node, path
        self.meta: SnapshotMeta | None = None
        self.store = KVStore(limits)
        self.membership = MembershipTable()
        self.error: SnapshotError | None = None
        self._cluster_id = cluster_id
        self._done = done
        threading.Thread(target=self._run, name="raftkv-snapshot-load", daemon=True).start()

    def _run(self) -> None:
        began = time.monotonic()
        try:
            failpoints.hit("received-snapshot-loading")
            meta = load_snapshot(self.path, self.store, self.membership)
            if self._cluster_id and meta.cluster_id and meta.cluster_id != self._cluster_id:
                raise SnapshotError(self.path, 0, f"a snapshot of another cluster ({meta.cluster_id:x})")
            self.meta = meta
            log.info("received snapshot loaded index=%d keys=%d seconds=%.3f", meta.index, self.store.key_count,
                     time.monotonic() - began)
        except SnapshotError as e:
            self.error = e
        except OSError as e:
            self.error = SnapshotError(self.path, 0, str(e))
        except BaseException as e:  # noqa: BLE001 - the member must hear the end, or it waits forever
            log.exception("loading a received snapshot failed path=%s", self.path)
            self.error = SnapshotError(self.path, 0, f"loading failed: {e!r}")
        self._done(self)
