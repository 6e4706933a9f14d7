"""A Raft member: pysyncobj 0.3.17, extended through its hooks, carrying the KV store.

What this adds to pysyncobj, each through an extension point:

- the journal (``raftkv.raft.journal``) through pysyncobj's journal factory:
  term and vote fsynced before they are used, entries fsynced in groups;
- a transport subclass that syncs the journal before any message leaves,
  so no append is acknowledged and no vote granted before it is durable;
- a tick callback that syncs the journal before the leader counts its own
  copy toward commit (one fsync per tick for everything written in it);
- the AppendEntries receiver (overriding the message handler): an entry is
  truncated only on a term conflict, never because a message repeats
  entries the follower already has;
- log entries are raftkv's own command type holding the protobuf-encoded
  request (``raftkv.wire``), applied by overriding the command applier;
- linearizable reads through a ReadIndex round: the leader records its
  commit index and confirms with a majority that it still leads before
  any read waiting on that round is served;
- lease expiry decided by the leader and applied as a revoke through the
  log; keep-alives renew the leader's deadline without a log entry.
"""

from __future__ import annotations

import gc
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pysyncobj.syncobj as _syncobj_module
from pysyncobj import SyncObj, SyncObjConf, SyncObjConsumer
from pysyncobj.config import FAIL_REASON
from pysyncobj.transport import TCPTransport

from raftkv.errors import (
    LeaderChanged,
    LeaseNotFound,
    NoLeader,
    RaftKVError,
    RequestTimedOut,
    TooManyRequests,
    Unhealthy,
)
from raftkv.mvcc.expiry import LeaseDeadlines
from raftkv.mvcc.requests import LeaseGrantRequest, LeaseRevokeRequest
from raftkv.mvcc.store import KVStore, StoreLimits
from raftkv.raft.journal import DurableJournal
from raftkv.raft.membership import MembershipTable, decode_change, encode_change
from raftkv.raft.storage import sync_existing_file
from raftkv.wire import WireError, decode_request, encode_request

log = logging.getLogger(__name__)

COMMAND_TYPE = 0x10  # a KV request; pysyncobj's own command types are 0..3
MEMBER_COMMAND_TYPE = 0x11  # a member's published attributes
_COMMAND_TAG = bytes([COMMAND_TYPE])
_MEMBER_TAG = bytes([MEMBER_COMMAND_TYPE])
_STATE_LEADER = 2


def _create_journal(journal_file=None):
    if journal_file is None:
        return _original_create_journal(journal_file)
    return DurableJournal(journal_file)


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


# Messages that promise nothing about this member's log. The leader's appends
# are among them: it writes its own copy while the followers write theirs (the
# Raft thesis, 10.2.1), and its copy counts toward a commit only after the sync
# at the end of the tick that appended it. A forwarded command and the index the
# leader gave it promise nothing either: the follower answers its client only
# once that index is committed and applied.
_NEEDS_NO_SYNC = frozenset({"append_entries", "apply_command", "apply_command_response"})


class SyncingTransport(TCPTransport):
    """Makes the journal durable before any message that acknowledges it leaves
    this member (append responses, votes)."""

    def send(self, node, message):
        if not (isinstance(message, dict) and message.get("type") in _NEEDS_NO_SYNC):
            self._syncObj._sync_journal()
        return super().send(node, message)


def _snapshot_state(state: dict) -> dict:
    return state


class _DeferredSnapshot:
    """Builds the snapshot only when pickled.

    pysyncobj asks for the consumer's data on the tick thread, then forks a
    child that pickles it to disk. Copying a million keys on the tick thread
    would stall the member; deferring the copy to pickling moves that work
    into the child, where the fork's copy-on-write pages hold a frozen state.
    """

    def __init__(self, state_machine: StateMachine) -> None:
        self._state_machine = state_machine

    def __reduce__(self):
        sm = self._state_machine
        return _snapshot_state, ({"store": sm.store.snapshot(), "members": sm.membership.snapshot()},)


class StateMachine(SyncObjConsumer):
    """What a Raft snapshot holds: the KV store's replicated state."""

    def __init__(self, store: KVStore, membership: MembershipTable,
                 on_restore: Callable[[], None]) -> None:
        super().__init__()
        self.store = store
        self.membership = membership
        self._on_restore = on_restore
        self.frozen = False

    def _serialize(self):
        # pysyncobj forks right after this. Freezing the collector keeps the
        # parent's garbage collections from touching (and so copying, page by
        # page) the whole heap the child is still reading.
        gc.freeze()
        self.frozen = True
        return _DeferredSnapshot(self)

    def _deserialize(self, data):
        self.store.restore(data["store"])
        self.membership.restore(data.get("members", []))
        self._on_restore()


@dataclass
class _ReadWaiter:
    """A read waiting for a read index, then for it to be applied."""

    done: threading.Event = field(default_factory=threading.Event)
    index: int | None = None
    error: Exception | None = None


@dataclass
class _ReadRound:
    id: int
    term: int
    index: int
    started: float
    acks: set = field(default_factory=set)
    local: list[_ReadWaiter] = field(default_factory=list)
    remote: list[tuple[object, int]] = field(default_factory=list)


@dataclass
class MemberConfig:
    """Timing and limits of a member. Defaults favour low latency on loopback."""

    election_timeout_min: float = 0.4
    election_timeout_max: float = 0.8
    heartbeat_interval: float = 0.05
    request_timeout: float = 5.0
    # an isolated leader steps down after this long without a majority
    leader_fallback_timeout: float = 1.0
    snapshot_min_entries: int = 100_000
    snapshot_min_seconds: float = 3600.0
    secret: str | None = None
    limits: StoreLimits = field(default_factory=StoreLimits)
    # host:port the peer server listens on when it differs from the address
    # the others know this member by (a proxy or NAT in between); None: that address
    bind_address: str | None = None


class RaftMember(SyncObj):
    def __init__(
        self,
        self_address: str,
        peer_addresses: list[str],
        data_dir: str,
        config: MemberConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        learner: bool = False,
    ) -> None:
        """A voting member at ``self_address``; with ``learner``, a learner:
        it connects to the voting members as one of pysyncobj's read-only
        nodes, receives the log, never votes, and is not counted."""
        self.config = config or MemberConfig()
        self.address = self_address
        self.learner = learner
        self.promoted = threading.Event()  # set when a learner learns it may vote
        os.makedirs(data_dir, exist_ok=True)
        self.data_dir = data_dir
        self.lock = threading.RLock()  # guards the store: the tick thread applies, readers read
        self.store = KVStore(self.config.limits)
        self.membership = MembershipTable()
        self.removed = threading.Event()  # set when this member learns it was removed
        self.deadlines = LeaseDeadlines()
        self._clock = clock
        self._requests: list[Callable[[], None]] = []  # work handed to the tick thread
        self._requests_lock = threading.Lock()
        self._ids = itertools.count(1)
        self._pending_reads: list[_ReadWaiter] = []
        self._remote_reads: list[tuple[object, int]] = []
        self._forwarded_reads: dict[int, list[_ReadWaiter]] = {}
        self._forwarded_at: dict[int, float] = {}
        self._round: _ReadRound | None = None
        self._applying: list[_ReadWaiter] = []
        self._keepalives: dict[int, tuple[int, Callable[[int | None, Exception | None], None]]] = {}
        self._revoking: set[int] = set()
        self._batching = False
        self._send_deferred = False
        self._drop_later: list[tuple[float, object]] = []
        self._leader_contact = clock()
        self._learner_progress: dict[str, tuple[int, float]] = {}
        self._progress_sent = 0.0
        conf = SyncObjConf(
            journalFile=os.path.join(data_dir, "raft.log"),
            fullDumpFile=os.path.join(data_dir, "snapshot"),
            appendEntriesUseBatch=False,
            appendEntriesPeriod=self.config.heartbeat_interval,
            raftMinTimeout=self.config.election_timeout_min,
            raftMaxTimeout=self.config.election_timeout_max,
            leaderFallbackTimeout=self.config.leader_fallback_timeout,
            connectionTimeout=max(3.5, self.config.election_timeout_max * 2),
            connectionRetryTime=0.2,
            # one message carries any single entry: pysyncobj's chunked
            # transmission path would bypass the AppendEntries fix below
            appendEntriesBatchSizeBytes=8 * 1024 * 1024,
            logCompactionMinEntries=self.config.snapshot_min_entries,
            logCompactionMinTime=self.config.snapshot_min_seconds,
            dynamicMembershipChange=True,
            password=self.config.secret,
            bindAddress=self.config.bind_address,
            commandsWaitLeader=True,
            onStateChanged=self._on_state_changed,
        )
        self.state_machine = StateMachine(self.store, self.membership, self._leases_restored)
        super().__init__(
            None if learner else self_address, [p for p in peer_addresses if p != self_address], conf,
            consumers=[self.state_machine], transportClass=SyncingTransport,
        )
        # pysyncobj stops ticking once the thread that created it ends; a
        # member lives until closed, whichever thread started it
        self._SyncObj__mainThread = threading.main_thread()
        if not learner:
            # lets a member that is starting ask whether it is a learner
            self._SyncObj__transport.setOnUtilityMessageCallback("raftkv_members", self._members_utility)
        # the snapshot must be durable before the log entries it replaces go
        self._journal.before_compaction = lambda: sync_existing_file(conf.fullDumpFile)
        self.addOnTickCallback(self._on_tick)

    # ---- pysyncobj internals we rely on (pinned to 0.3.17) ---------------------

    @property
    def _journal(self) -> DurableJournal:
        return self._SyncObj__raftLog

    @property
    def is_leader(self) -> bool:
        return self._SyncObj__raftState == _STATE_LEADER

    @property
    def term(self) -> int:
        return self._SyncObj__raftCurrentTerm

    @property
    def leader_address(self) -> str | None:
        """The leader this member follows, or None if it has not heard from
        one within an election timeout (pysyncobj alone would keep naming a
        lost leader while no peer is reachable)."""
        leader = self._SyncObj__raftLeader
        if leader is None:
            return None
        if not self.is_leader and self._clock() - self._leader_contact > self.config.election_timeout_max:
            return None
        return leader.address

    @property
    def applied_index(self) -> int:
        return self._SyncObj__raftLastApplied

    @property
    def commit_index(self) -> int:
        return self._SyncObj__raftCommitIndex

    def _voters(self) -> set:
        return self._SyncObj__otherNodes

    def _wake(self) -> None:
        notifier = getattr(self, "_SyncObj__pipeNotifier", None)
        if notifier is not None:
            notifier.notify()

    def _sync_journal(self) -> None:
        journal = self._SyncObj__raftLog
        if isinstance(journal, DurableJournal):
            journal.sync()

    # ---- writes ------------------------------------------------------------------

    def propose(self, request: object, timeout: float | None = None) -> object:
        """Replicate a request; return its response once applied here."""
        if isinstance(request, LeaseGrantRequest) and request.id == 0:
            raise ValueError("choose the lease id before proposing")
        return self._propose_raw(encode_request(request), COMMAND_TYPE, timeout)

    def _propose_raw(self, data: bytes, command_type: int, timeout: float | None) -> object:
        # a bare lock as the completion signal: cheaper than an Event per request
        done = threading.Lock()
        done.acquire()
        outcome: list = []

        def on_applied(result, error):
            outcome.append((result, error))
            done.release()

        self._applyCommand(data, on_applied, command_type)
        if not done.acquire(timeout=timeout or self.config.request_timeout):
            raise RequestTimedOut()
        result, error = outcome[0]
        if error != FAIL_REASON.SUCCESS:
            raise error_for_fail_reason(error)
        if isinstance(result, Exception):
            raise result
        return result

    def _SyncObj__doApplyCommand(self, command):  # noqa: N802 (overrides pysyncobj's applier)
        tag = command[:1]
        if tag == _MEMBER_TAG:
            return self._apply_member_change(command[1:])
        if tag != _COMMAND_TAG:
            self._notice_own_removal(command)
            return SyncObj._SyncObj__doApplyCommand(self, command)
        try:
            request = decode_request(command[1:])
        except WireError as e:
            log.error("undecodable log entry skipped error=%s", e)
            return e
        now = self._clock()
        with self.lock:
            try:
                response = self.store.apply(request)
            except RaftKVError as e:
                return e
            except Exception as e:  # a bug: every member fails the same way, so keep going
                log.exception("apply failed request=%s", type(request).__name__)
                return RaftKVError(f"raftkv: apply failed: {e}")
            if isinstance(request, LeaseGrantRequest):
                self.deadlines.start(request.id, response.ttl, now)
            elif isinstance(request, LeaseRevokeRequest):
                self.deadlines.remove(request.id)
                self._revoking.discard(request.id)
        return response

    # ---- membership ----------------------------------------------------------------

    def publish(self, change: dict, timeout: float | None = None) -> None:
        """Replicate a change to the membership table (name, URLs)."""
        self._propose_raw(encode_change(change), MEMBER_COMMAND_TYPE, timeout)

    def _apply_member_change(self, data: bytes):
        try:
            change = decode_change(data)
        except ValueError as e:
            log.error("undecodable membership entry skipped error=%s", e)
            return None
        with self.lock:
            self.membership.apply(change)
        if self.learner and change["address"] == self.address:
            if change.get("removed"):
                log.warning("this learner was removed from the cluster address=%s", self.address)
                self.removed.set()
            elif change.get("is_learner") is False:
                self.promoted.set()
        return None

    def follower_caught_up(self, address: str, wait: float = 2.0) -> bool:
        """Whether a learner has applied at least 90% of this member's log,
        etcd's condition for promoting it. Learners report every half
        second, so a report is awaited for up to ``wait`` seconds."""
        deadline = time.monotonic() + wait
        while True:
            reported = self._learner_progress.get(address)
            if reported is not None and self._clock() - reported[1] <= 3.0 \
                    and reported[0] >= 0.9 * self.commit_index:
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)

    def _report_progress(self, now: float) -> None:
        if now - self._progress_sent < 0.5:
            return
        self._progress_sent = now
        for node in self._voters():
            self._SyncObj__transport.send(
                node, {"type": "rk_progress", "address": self.address, "applied": self.applied_index})

    def _members_utility(self, args, callback) -> None:
        with self.lock:
            callback(self.membership.to_json(), None)

    def _SyncObj__doChangeCluster(self, request, reverse=False):  # noqa: N802 (extends pysyncobj's)
        removing = request[0] == "rem" and not reverse
        if not removing and request[1] == self.address and self.learner:
            # a learner promoted: it becomes a voter by restarting as one
            self.promoted.set()
            return False
        if not removing or request[1] == self.address:
            if not removing:  # an add, or a removal rolled back
                self._drop_later = [(t, n) for t, n in self._drop_later if n.id != request[1]]
            return SyncObj._SyncObj__doChangeCluster(self, request, reverse)
        # pysyncobj would close the removed member's connection at once, so it
        # would never hear of its removal: stop counting it now, tell it, and
        # close the connection a little later.
        node = next((n for n in self._voters() if n.id == request[1]), None)
        if node is None:
            return False
        self._SyncObj__transport.send(node, {"type": "rk_removed", "term": self.term})
        self._SyncObj__otherNodes.discard(node)
        self._SyncObj__raftNextIndex.pop(node, None)
        self._SyncObj__raftMatchIndex.pop(node, None)
        self._drop_later.append((self._clock() + 1.0, node))
        return True

    def _drop_removed(self, now: float) -> None:
        due = [n for t, n in self._drop_later if t <= now]
        if due:
            self._drop_later = [(t, n) for t, n in self._drop_later if t > now]
            for node in due:
                self._SyncObj__transport.dropNode(node)

    def _notice_own_removal(self, command: bytes) -> None:
        change = self._SyncObj__parseChangeClusterRequest(command)
        if change is not None and change[0] == "rem" and change[1] == self.address:
            log.warning("this member was removed from the cluster address=%s", self.address)
            self.removed.set()

    def voting_addresses(self) -> set[str]:
        voters = {node.id for node in self._voters()}
        return voters if self.learner else voters | {self.address}

    def change_membership(self, add: str | None = None, remove: str | None = None,
                          timeout: float | None = None) -> None:
        """Add or remove one voting member (by peer address) through the log.

        pysyncobj refuses a change while another is in flight or before a new
        leader has committed its first entry; those refusals are retried.
        """
        deadline = time.monotonic() + (timeout or self.config.request_timeout)
        while True:
            done = threading.Event()
            outcome: list = []

            def finish(result, error, outcome=outcome, done=done):
                outcome.append(error)
                done.set()

            if add is not None:
                self.addNodeToCluster(add, finish)
            else:
                self.removeNodeFromCluster(remove, finish)
            self._wake()
            if not done.wait(max(0.0, deadline - time.monotonic())):
                raise RequestTimedOut()
            if outcome[0] == FAIL_REASON.SUCCESS:
                return
            if outcome[0] != FAIL_REASON.REQUEST_DENIED or time.monotonic() > deadline:
                raise error_for_fail_reason(outcome[0])
            time.sleep(0.1)

    def transfer_leadership(self, to: str | None = None, timeout: float | None = None) -> None:
        """Hand leadership to ``to`` (or the most caught-up follower) and wait
        until another member leads."""
        deadline = time.monotonic() + (timeout or self.config.request_timeout)
        outcome: list = []
        done = threading.Event()

        def finish(result, error):
            outcome.append(error)
            done.set()

        self._submit(lambda: self.transferLeadership(to, finish))
        if not done.wait(max(0.0, deadline - time.monotonic())):
            raise RequestTimedOut()
        if outcome[0] != FAIL_REASON.SUCCESS:
            raise error_for_fail_reason(outcome[0])
        while self.is_leader or self.leader_address in (None, self.address):
            if time.monotonic() > deadline:
                raise RequestTimedOut()
            time.sleep(0.02)

    def ask_leader_to_step_down(self, timeout: float | None = None) -> None:
        """Have the current (other) leader hand leadership over; wait until it has."""
        deadline = time.monotonic() + (timeout or self.config.request_timeout)
        old = self.leader_address
        while self.leader_address in (None, old):
            leader = self._SyncObj__raftLeader
            if leader is not None:
                self._submit(lambda: self._SyncObj__transport.send(leader, {"type": "rk_transfer"}))
            if time.monotonic() > deadline:
                raise RequestTimedOut()
            time.sleep(0.2)

    # ---- group commit ---------------------------------------------------------------

    def _checkCommandsToApply(self):  # noqa: N802 (extends pysyncobj's)
        # pysyncobj (with appendEntriesUseBatch off) sends an append after
        # every command it takes from the queue. Take them all first, then
        # send once: one fsync and one message per follower for the group.
        self._batching = True
        try:
            SyncObj._checkCommandsToApply(self)
        finally:
            self._batching = False
        if self._send_deferred:
            self._send_deferred = False
            SyncObj._SyncObj__sendAppendEntries(self)

    def _SyncObj__sendAppendEntries(self):  # noqa: N802 (wraps pysyncobj's)
        if self._batching:
            self._send_deferred = True
            return
        SyncObj._SyncObj__sendAppendEntries(self)

    # ---- AppendEntries receiver -------------------------------------------------

    def _SyncObj__onMessageReceived(self, node, message):  # noqa: N802 (overrides pysyncobj's handler)
        kind = message.get("type") if isinstance(message, dict) else None
        if kind is None:
            log.warning("ignored a malformed peer message peer=%s", getattr(node, "address", node))
            return
        if kind.startswith("rk_"):
            self._on_raftkv_message(node, message, kind)
            return
        if kind in ("request_vote", "append_entries") and node not in self._voters():
            return  # e.g. a member just removed: it must not disturb the others
        if (kind == "append_entries" and "prevLogIdx" in message
                and "transmission" not in message
                and message.get("term", -1) >= self._SyncObj__raftCurrentTerm):
            self._on_append_entries(node, message)
            return
        SyncObj._SyncObj__onMessageReceived(self, node, message)

    def _on_append_entries(self, node, message) -> None:
        # Let pysyncobj do the bookkeeping of a valid leader's message (term,
        # leader, election deadline, follower state) on a copy that carries no
        # log operation, then do the log operation by Raft's rules.
        SyncObj._SyncObj__onMessageReceived(self, node, {
            "type": "append_entries",
            "term": message["term"],
            "commit_index": self._SyncObj__raftCommitIndex,
        })
        self._leader_contact = self._clock()
        get_entries = self._SyncObj__getEntries
        prev_idx, prev_term = message["prevLogIdx"], message["prevLogTerm"]
        prev = get_entries(prev_idx, 1)
        if not prev or prev[0][2] != prev_term:
            # Ask for everything after our commit index: committed entries are
            # in every later leader's log, so that prefix matches, and one round
            # trip repairs any divergent suffix. (pysyncobj's answers, our last
            # index + 1 or prev_idx, walk back one entry per reply, and the
            # leader's pipelined appends keep resetting it to our last index + 1:
            # a member that led alone with uncommitted entries never caught up.)
            matching = min(self._SyncObj__raftCommitIndex, self._SyncObj__getCurrentLogIndex())
            self._SyncObj__sendNextNodeIdx(node, nextNodeIdx=matching + 1, success=False, reset=True)
            return

        new_entries = list(message.get("entries", []))
        skip = 0
        for entry in new_entries:
            mine = get_entries(entry[1], 1)
            if not mine:
                break
            if mine[0][2] != entry[2]:
                self._truncate_conflict(entry[1])
                break
            skip += 1
        appended = new_entries[skip:]
        for entry in appended:
            self._journal.add(*entry)
        for entry in appended:
            change = self._SyncObj__parseChangeClusterRequest(entry[0])
            if change is not None:
                self._SyncObj__doChangeCluster(change)

        last_new = new_entries[-1][1] if new_entries else prev_idx
        leader_commit = message["commit_index"]
        self._SyncObj__leaderCommitIndex = leader_commit
        if leader_commit > self._SyncObj__raftCommitIndex:
            self._SyncObj__raftCommitIndex = max(
                self._SyncObj__raftCommitIndex, min(leader_commit, last_new))
            self._journal.setRaftCommitIndex(self._SyncObj__raftCommitIndex)
        self._SyncObj__sendNextNodeIdx(node, nextNodeIdx=last_new + 1, success=True)

    def _truncate_conflict(self, index: int) -> None:
        if index <= self._SyncObj__raftCommitIndex:
            # Raft guarantees a committed entry never conflicts; refuse rather than diverge.
            log.critical("leader sent an entry conflicting with a committed one index=%d commit=%d",
                         index, self._SyncObj__raftCommitIndex)
            raise RuntimeError("conflict with a committed entry")
        for entry in reversed(self._SyncObj__getEntries(index)):
            change = self._SyncObj__parseChangeClusterRequest(entry[0])
            if change is not None:
                self._SyncObj__doChangeCluster(change, reverse=True)
        log.info("truncating conflicting log suffix from_index=%d", index)
        self._SyncObj__deleteEntriesFrom(index)

    # ---- reads -------------------------------------------------------------------

    def read_barrier(self, timeout: float | None = None) -> None:
        """Return once this member has applied everything committed before the
        call, as confirmed by a current leader (Raft's ReadIndex)."""
        waiter = _ReadWaiter()
        self._submit(lambda: self._pending_reads.append(waiter))
        if not waiter.done.wait(timeout or self.config.request_timeout):
            raise RequestTimedOut()
        if waiter.error is not None:
            raise waiter.error

    def _leader_ready(self) -> bool:
        # A new leader knows the commit index only once an entry of its own
        # term (the no-op it appends on election) is committed.
        noop = self._SyncObj__noopIDx
        return self.is_leader and noop is not None and self._SyncObj__raftCommitIndex >= noop

    def _progress_reads(self, now: float) -> None:
        if self.is_leader:
            round_ = self._round
            if round_ is not None and (round_.term != self.term or now - round_.started > 1.0):
                # leadership changed or the round stalled: its waiters try again
                self._pending_reads.extend(round_.local)
                self._remote_reads.extend(round_.remote)
                self._round = round_ = None
            if round_ is None and (self._pending_reads or self._remote_reads) and self._leader_ready():
                round_ = _ReadRound(next(self._ids), self.term, self._SyncObj__raftCommitIndex, now,
                                    local=self._pending_reads, remote=self._remote_reads)
                self._pending_reads, self._remote_reads = [], []
                self._round = round_
                for node in self._voters():
                    self._SyncObj__transport.send(node, {"type": "rk_ping", "id": round_.id, "term": round_.term})
                self._maybe_finish_round()
        else:
            if self._round is not None:
                self._pending_reads.extend(self._round.local)
                self._round = None
            self._remote_reads.clear()  # their members will ask the new leader
            leader = self._SyncObj__raftLeader
            if self._pending_reads and leader is not None:
                request_id = next(self._ids)
                self._forwarded_reads[request_id] = self._pending_reads
                self._forwarded_at[request_id] = now
                self._pending_reads = []
                self._SyncObj__transport.send(leader, {"type": "rk_read", "id": request_id})
            for request_id, sent in list(self._forwarded_at.items()):
                if now - sent > 1.0:  # lost with a leader change: ask again
                    del self._forwarded_at[request_id]
                    self._pending_reads.extend(self._forwarded_reads.pop(request_id, []))
        applied = self.applied_index
        still = []
        for waiter in self._applying:
            if waiter.index <= applied:
                waiter.done.set()
            else:
                still.append(waiter)
        self._applying = still

    def _maybe_finish_round(self) -> None:
        round_ = self._round
        voters = len(self._voters()) + 1
        if round_ is None or (len(round_.acks) + 1) * 2 <= voters:
            return
        self._round = None
        for waiter in round_.local:
            waiter.index = round_.index
            self._applying.append(waiter)
        for node, request_id in round_.remote:
            self._SyncObj__transport.send(node, {"type": "rk_read_index", "id": request_id, "index": round_.index})

    # ---- leases ------------------------------------------------------------------

    def keep_alive(self, lease_id: int, timeout: float | None = None) -> int:
        done = threading.Event()
        outcome: list = []

        def finish(ttl, error):
            outcome.append((ttl, error))
            done.set()

        self._submit(lambda: self._keep_alive_on_tick(lease_id, finish))
        if not done.wait(timeout or self.config.request_timeout):
            raise RequestTimedOut()
        ttl, error = outcome[0]
        if error is not None:
            raise error
        return ttl

    def _keep_alive_on_tick(self, lease_id: int, finish) -> None:
        if self.is_leader:
            finish(*self._renew(lease_id))
            return
        leader = self._SyncObj__raftLeader
        if leader is None:
            finish(None, NoLeader())
            return
        request_id = next(self._ids)
        self._keepalives[request_id] = (lease_id, finish)
        self._SyncObj__transport.send(leader, {"type": "rk_keepalive", "id": request_id, "lease": lease_id})

    def _renew(self, lease_id: int) -> tuple[int | None, Exception | None]:
        with self.lock:
            if lease_id not in self.store.lessor or lease_id in self._revoking:
                return None, LeaseNotFound()
            if lease_id not in self.deadlines:  # never happens unless state was restored oddly
                self.deadlines.start(lease_id, self.store.lessor.get(lease_id).ttl, self._clock())
            ttl = self.deadlines.renew(lease_id, self._clock())
            return (None, LeaseNotFound()) if ttl is None else (ttl, None)

    def _expire_leases(self, now: float) -> None:
        if not self._leader_ready():
            return
        with self.lock:
            expired = [lease_id for lease_id in self.deadlines.expired(now) if lease_id in self.store.lessor]
        for lease_id in expired:
            self._revoking.add(lease_id)
            log.info("lease expired lease_id=%x", lease_id)
            self._applyCommand(encode_request(LeaseRevokeRequest(lease_id)), None, COMMAND_TYPE)

    def _leases_restored(self) -> None:
        """After a snapshot replaced the state: every lease in it starts a full
        TTL (as etcd's leases do when a member recovers), none other is tracked."""
        now = self._clock()
        with self.lock:
            for lease_id in [i for i in self.deadlines.ids() if i not in self.store.lessor]:
                self.deadlines.remove(lease_id)
            for lease in self.store.lessor.leases():
                self.deadlines.start(lease.id, lease.ttl, now)

    def _on_state_changed(self, old_state: int, new_state: int) -> None:
        if new_state == _STATE_LEADER:
            # as etcd's new leader: every lease gets its full TTL again, so
            # none expires because leadership moved
            with self.lock:
                self.deadlines.extend_all(self._clock())
            self._revoking.clear()
            log.info("became leader term=%d", self.term)
        elif old_state == _STATE_LEADER:
            log.info("stepped down term=%d", self.term)
        for request_id, (lease_id, finish) in list(self._keepalives.items()):
            finish(None, LeaderChanged())
        self._keepalives.clear()

    # ---- raftkv's peer messages ------------------------------------------------

    def _on_raftkv_message(self, node, message: dict, kind: str) -> None:
        try:
            if kind == "rk_ping":
                ok = message["term"] == self.term and self._SyncObj__raftLeader == node
                self._SyncObj__transport.send(node, {"type": "rk_pong", "id": message["id"], "ok": ok})
            elif kind == "rk_pong":
                round_ = self._round
                if round_ is not None and message["id"] == round_.id and message["ok"]:
                    round_.acks.add(node)
                    self._maybe_finish_round()
            elif kind == "rk_read":
                self._remote_reads.append((node, int(message["id"])))
                self._progress_reads(self._clock())
            elif kind == "rk_read_index":
                waiters = self._forwarded_reads.pop(message["id"], [])
                self._forwarded_at.pop(message["id"], None)
                for waiter in waiters:
                    waiter.index = int(message["index"])
                    self._applying.append(waiter)
            elif kind == "rk_removed":
                if message["term"] >= self.term:
                    log.warning("removed from the cluster by a peer peer=%s", getattr(node, "id", node))
                    self.removed.set()
            elif kind == "rk_progress":
                self._learner_progress[str(message["address"])] = (int(message["applied"]), self._clock())
            elif kind == "rk_transfer":
                if self.is_leader:
                    self.transferLeadership(None, None)
            elif kind == "rk_keepalive":
                ttl, error = self._renew(int(message["lease"])) if self.is_leader else (None, LeaderChanged())
                self._SyncObj__transport.send(node, {
                    "type": "rk_keepalive_result", "id": message["id"], "ttl": ttl,
                    "error": type(error).__name__ if error else None,
                })
            elif kind == "rk_keepalive_result":
                pending = self._keepalives.pop(message["id"], None)
                if pending is not None:
                    error = {"LeaseNotFound": LeaseNotFound, "LeaderChanged": LeaderChanged}.get(message["error"])
                    pending[1](message["ttl"], error() if error else None)
            else:
                log.warning("ignored an unknown peer message type=%s", kind)
        except (KeyError, TypeError, ValueError) as e:
            log.warning("ignored a malformed peer message type=%s error=%s", kind, e)

    # ---- the tick --------------------------------------------------------------

    def _submit(self, work: Callable[[], None]) -> None:
        with self._requests_lock:
            self._requests.append(work)
        self._wake()

    def _on_tick(self) -> None:
        # Entries written during this tick become durable before the next
        # tick's commit computation counts the leader's own copy.
        self._sync_journal()
        if self.state_machine.frozen and not self._SyncObj__serializer._Serializer__pid:
            self.state_machine.frozen = False  # the snapshot child is done
            gc.unfreeze()
        if self.is_leader and not self._voters() and self.commit_index < self._SyncObj__getCurrentLogIndex():
            # alone, no reply will wake the next tick: do not wait for the timer
            self._wake()
        with self._requests_lock:
            work, self._requests = self._requests, []
        for item in work:
            item()
        now = self._clock()
        self._progress_reads(now)
        self._expire_leases(now)
        self._drop_removed(now)
        if self.learner:
            self._report_progress(now)

    # ---- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        self.destroy_synchronous()
        self._sync_journal()
