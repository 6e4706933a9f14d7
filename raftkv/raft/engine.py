"""pysyncobj 0.3.17 as raftkv uses it: the one module that knows its private names.

pysyncobj keeps its Raft state in name-mangled attributes (``_SyncObj__...``)
and offers its extension points as private methods. ``Engine`` subclasses
``SyncObj`` and gives the rest of ``raftkv.raft`` raftkv's own names for both:
accessors for the state it reads and writes, and hook methods
(``_apply_entry``, ``_on_peer_message``, ...) that pysyncobj's calls land in.
pysyncobj is pinned exactly (pyproject.toml) because of this module.
"""

from __future__ import annotations

import logging
import threading

import pysyncobj.syncobj as _syncobj_module
from pysyncobj import SyncObj
from pysyncobj.config import FAIL_REASON

from raftkv.errors import LeaderChanged, NoLeader, RaftKVError, RequestTimedOut, TooManyRequests, Unhealthy
from raftkv.raft.journal import DurableJournal

log = logging.getLogger(__name__)

STATE_LEADER = 2  # pysyncobj's _RAFT_STATE.LEADER
COMMAND_TYPE = 0x10  # a KV request; pysyncobj's own command types are 0..3
MEMBER_COMMAND_TYPE = 0x11  # a member's published attributes
NO_OP_TAG = bytes([1])  # pysyncobj's no-op (a new leader's first entry)
MEMBERSHIP_TAG = bytes([2])  # a Raft configuration change: ["add"|"rem", address] as codec bytes


def _create_journal(journal_file=None):
    if isinstance(journal_file, DurableJournal):
        return journal_file  # opened, checked and trimmed by the member before pysyncobj starts
    return _original_create_journal(journal_file)


# pysyncobj builds its journal through this module-level factory.
_original_create_journal = _syncobj_module.createJournal
_syncobj_module.createJournal = _create_journal


def error_for_fail_reason(reason: int) -> RaftKVError:
    if reason == FAIL_REASON.QUEUE_FULL:
        return TooManyRequests()
    if reason == FAIL_REASON.MISSING_LEADER:
        return NoLeader()
    if reason in (FAIL_REASON.DISCARDED, FAIL_REASON.NOT_LEADER, FAIL_REASON.LEADER_CHANGED):
        return LeaderChanged()
    if reason == FAIL_REASON.REQUEST_DENIED:  # e.g. another membership change is in flight
        return Unhealthy()
    return RequestTimedOut()


class Engine(SyncObj):
    """pysyncobj's state and hooks under raftkv's names."""

    # ---- hooks: pysyncobj calls these; subclasses implement the raftkv names ----

    def _SyncObj__doApplyCommand(self, command):  # noqa: N802
        return self._apply_entry(command)

    def _SyncObj__onMessageReceived(self, node, message):  # noqa: N802
        self._on_peer_message(node, message)

    def _SyncObj__parseChangeClusterRequest(self, command):  # noqa: N802 (its own unpickles)
        return self._parse_configuration_change(command)

    def _SyncObj__doChangeCluster(self, request, reverse=False):  # noqa: N802
        return self._change_configuration(request, reverse)

    def _SyncObj__tryLogCompaction(self):  # noqa: N802 (its own pickles the state)
        self._maybe_snapshot()

    def _SyncObj__sendAppendEntries(self):  # noqa: N802
        self._send_appends()

    def _SyncObj__loadDumpFile(self, clearJournal):  # noqa: N802,N803 (never used: raftkv loads its own)
        log.error("pysyncobj asked to load a snapshot by itself; ignored")

    def _apply_entry(self, command: bytes):
        raise NotImplementedError

    def _on_peer_message(self, node, message) -> None:
        self._handle_as_pysyncobj(node, message)

    def _parse_configuration_change(self, command):
        return SyncObj._SyncObj__parseChangeClusterRequest(self, command)

    def _change_configuration(self, request, reverse: bool = False):
        return self._change_configuration_as_pysyncobj(request, reverse)

    def _maybe_snapshot(self) -> None:
        raise NotImplementedError

    def _send_appends(self) -> None:
        self._send_appends_now()

    # ---- pysyncobj's own behaviour, for the hooks above to fall back on -----------

    def _handle_as_pysyncobj(self, node, message) -> None:
        SyncObj._SyncObj__onMessageReceived(self, node, message)

    def _change_configuration_as_pysyncobj(self, request, reverse: bool):
        return SyncObj._SyncObj__doChangeCluster(self, request, reverse)

    def _send_appends_now(self) -> None:
        SyncObj._SyncObj__sendAppendEntries(self)

    def _send_next_index(self, node, next_index: int, success: bool, reset: bool = False) -> None:
        """A follower's answer to an append: where its log should continue."""
        self._SyncObj__sendNextNodeIdx(node, nextNodeIdx=next_index, success=success, reset=reset)

    # ---- state ------------------------------------------------------------------

    @property
    def _journal(self) -> DurableJournal:
        return self._SyncObj__raftLog

    @property
    def is_leader(self) -> bool:
        return self._SyncObj__raftState == STATE_LEADER

    @property
    def term(self) -> int:
        return self._SyncObj__raftCurrentTerm

    @property
    def _leader_node(self):
        """The node pysyncobj takes for the leader (it may be stale)."""
        return self._SyncObj__raftLeader

    @property
    def applied_index(self) -> int:
        return self._SyncObj__raftLastApplied

    @property
    def commit_index(self) -> int:
        return self._SyncObj__raftCommitIndex

    def _set_commit_index(self, index: int) -> None:
        self._SyncObj__raftCommitIndex = index

    def _set_leader_commit_index(self, index: int) -> None:
        self._SyncObj__leaderCommitIndex = index

    def _set_applied_index(self, index: int) -> None:
        self._SyncObj__raftLastApplied = index

    def _end_proposals_through(self, index: int) -> int:
        """Proposals whose entries a snapshot covers are never applied one by
        one, so their callbacks would wait forever: they end now, with an
        unknown outcome (the snapshot may or may not hold them)."""
        waiting = self._SyncObj__commandsWaitingCommit
        ended = 0
        for entry_index in [i for i in waiting if i <= index]:
            for _term, callback in waiting.pop(entry_index):
                callback(None, FAIL_REASON.UNKNOWN_OUTCOME)
                ended += 1
        return ended

    @property
    def _noop_index(self) -> int | None:
        """The index of the no-op a new leader appended, or None."""
        return self._SyncObj__noopIDx

    def _last_log_index(self) -> int:
        return self._SyncObj__getCurrentLogIndex()

    def _entries(self, from_index: int, count: int | None = None) -> list:
        return self._SyncObj__getEntries(from_index, count)

    def _delete_entries_from(self, index: int) -> None:
        self._SyncObj__deleteEntriesFrom(index)

    def _delete_entries_to(self, index: int) -> None:
        self._SyncObj__deleteEntriesTo(index)

    def _voters(self) -> set:
        """The other voting members' nodes."""
        return self._SyncObj__otherNodes

    def _learner_nodes(self) -> set:
        return self._SyncObj__readonlyNodes

    @property
    def _transport(self):
        return self._SyncObj__transport

    def _forget_follower(self, node) -> None:
        """Stop counting and sending to ``node`` (its connection stays)."""
        self._SyncObj__otherNodes.discard(node)
        self._SyncObj__raftNextIndex.pop(node, None)
        self._SyncObj__raftMatchIndex.pop(node, None)

    def _is_follower_tracked(self, node) -> bool:
        return node in self._SyncObj__raftMatchIndex

    def _update_configuration(self, other_voters: list[str]) -> None:
        self._SyncObj__updateClusterConfiguration(other_voters)

    def _take_compaction_request(self) -> bool:
        """Whether a snapshot was asked for (forceLogCompaction); clears the request."""
        forced = self._SyncObj__forceLogCompaction
        self._SyncObj__forceLogCompaction = False
        return forced

    def _cancel_snapshot_transmission(self, node) -> None:
        self._SyncObj__serializer.cancelTransmisstion(node)

    def _snapshot_loaded_already(self) -> None:
        """pysyncobj must not load the snapshot file itself at its first tick."""
        self._SyncObj__needLoadDumpFile = False

    def _keep_ticking_after_creator_exits(self) -> None:
        # pysyncobj stops ticking once the thread that created it ends
        self._SyncObj__mainThread = threading.main_thread()

    def _wake(self) -> None:
        """Have the tick thread run now rather than at its timer."""
        notifier = getattr(self, "_SyncObj__pipeNotifier", None)  # absent until pysyncobj starts its poller
        if notifier is not None:
            notifier.notify()

    def _sync_journal(self) -> None:
        journal = self._SyncObj__raftLog
        if isinstance(journal, DurableJournal):
            journal.sync()
