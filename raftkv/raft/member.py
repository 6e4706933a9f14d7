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
  log; keep-alives renew the leader's deadline without a log entry;
- peer messages on raftkv's own transport (``transport``): plain values,
  bounded frames, a handshake that checks cluster, member and secret or TLS;
  nothing is ever unpickled, and membership changes are entries of our own;
- snapshots of our own (``snapshot``), written by a child that dies with the
  member (``snapshot_writer``) and renamed into place only when complete;
  the log is trimmed to a snapshot on start, never cleared because of one;
  a damaged snapshot or log stops the member instead of being served;
- a data directory that records whose it is (``identity``);
- a failed write or fsync stops the member (``StorageFailure``): no vote,
  no acknowledgement, no term it has not stored.
"""

from __future__ import annotations

import glob
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pysyncobj.syncobj as _syncobj_module
from pysyncobj import SyncObj, SyncObjConf
from pysyncobj.config import FAIL_REASON

from raftkv.errors import (
    LeaderChanged,
    LeaseNotFound,
    NoLeader,
    RaftKVError,
    RequestTimedOut,
    TooManyRequests,
    Unhealthy,
)
from raftkv.mvcc.auth import AuthResponse
from raftkv.mvcc.expiry import LeaseDeadlines
from raftkv.mvcc.permissions import unwrapped
from raftkv.mvcc.requests import LeaseGrantRequest, LeaseRevokeRequest
from raftkv.mvcc.store import KVStore, StoreLimits
from raftkv.mvcc.tokens import DEFAULT_TOKEN_TTL, SimpleTokens, TokenProvider
from raftkv.raft import codec, failpoints
from raftkv.raft.identity import (
    DataDirError,
    DataDirIdentity,
    derive_cluster_id,
    open_identity,
)
from raftkv.raft.journal import CorruptLog, DurableJournal
from raftkv.raft.membership import MembershipTable, decode_change, encode_change
from raftkv.raft.messages import message_problem
from raftkv.raft.peer_auth import PeerSecurity
from raftkv.raft.snapshot import (
    SnapshotError,
    SnapshotMeta,
    load_snapshot,
    read_meta,
    state_records,
    write_snapshot,
)
from raftkv.raft.snapshot_writer import SnapshotWriter, WriterState
from raftkv.raft.stats import RaftStats
from raftkv.raft.storage import StorageFailure, install_file
from raftkv.raft.transport import PeerSettings, PeerTransport
from raftkv.wire import WireError, decode_request, encode_request

log = logging.getLogger(__name__)

COMMAND_TYPE = 0x10  # a KV request; pysyncobj's own command types are 0..3
MEMBER_COMMAND_TYPE = 0x11  # a member's published attributes
_COMMAND_TAG = bytes([COMMAND_TYPE])
_MEMBER_TAG = bytes([MEMBER_COMMAND_TYPE])
_NO_OP_TAG = bytes([1])            # pysyncobj's no-op (a new leader's first entry)
_MEMBERSHIP_TAG = bytes([2])       # a Raft configuration change: ["add"|"rem", address] as codec bytes
_STATE_LEADER = 2
SNAPSHOT_FILE = "snapshot"
_RECEIVED_SNAPSHOT = "snapshot.received.tmp"


def _create_journal(journal_file=None):
    if isinstance(journal_file, DurableJournal):
        return journal_file  # opened, checked and trimmed by RaftMember before pysyncobj starts
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


# Messages that promise nothing about this member's log. The leader's appends
# are among them: it writes its own copy while the followers write theirs (the
# Raft thesis, 10.2.1), and its copy counts toward a commit only after the sync
# at the end of the tick that appended it. A forwarded command and the index the
# leader gave it promise nothing either: the follower answers its client only
# once that index is committed and applied.
_NEEDS_NO_SYNC = frozenset({"append_entries", "apply_command", "apply_command_response"})


class SyncingTransport(PeerTransport):
    """Makes the journal durable before any message that acknowledges it leaves
    this member (append responses, votes)."""

    def send(self, node, message):
        if not (isinstance(message, dict) and message.get("type") in _NEEDS_NO_SYNC):
            self._syncObj._sync_journal()
        sent = super().send(node, message)
        chunk = message.get("serialized") if isinstance(message, dict) else None
        if sent and chunk is not None and chunk[2]:  # the last piece of a snapshot
            self._syncObj.snapshot_sent(node)
        return sent


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
    # TLS and an allowed CN for peers (the secret above is added to it)
    peer_security: PeerSecurity | None = None
    limits: StoreLimits = field(default_factory=StoreLimits)
    # host:port the peer server listens on when it differs from the address
    # the others know this member by (a proxy or NAT in between); None: that address
    bind_address: str | None = None
    # the cluster a new data directory belongs to; None: derived from the peers
    cluster_id: int | None = None
    # seconds an auth token lives without use (etcd's --auth-token-ttl)
    auth_token_ttl: float = DEFAULT_TOKEN_TTL
    # the kind of auth tokens (etcd's --auth-token); None: simple ones, living auth_token_ttl
    tokens: TokenProvider | None = None
    # refuse membership changes that would leave too few started or connected members
    # (etcd's --strict-reconfig-check)
    strict_reconfig_check: bool = True


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
        self.tokens: TokenProvider = self.config.tokens if self.config.tokens is not None \
            else SimpleTokens(self.config.auth_token_ttl)
        self._tokens_swept = 0.0
        self.stats = RaftStats()
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
        self.failed = threading.Event()  # set when storage failed: the member stopped taking part
        self.failure: Exception | None = None
        self._started = False
        self._snapshot_path = os.path.join(data_dir, SNAPSHOT_FILE)
        self._writer = SnapshotWriter()
        self._writing: SnapshotMeta | None = None
        self._last_snapshot_at = clock()
        self._snapshot_retry_at = 0.0
        self._receiving: tuple[object, int] | None = None  # (leader, fd) of a snapshot being received
        self._snapshot_sent_at: dict[object, float] = {}  # when a follower was last sent the whole snapshot

        voters = sorted(set(peer_addresses) | ({self_address} if not learner else set()))
        cluster_id = self.config.cluster_id
        if cluster_id is None:
            cluster_id = derive_cluster_id(voters)
        self.identity: DataDirIdentity = open_identity(data_dir, self_address, voters, cluster_id)
        journal, self._startup_snapshot = self._open_storage()
        if self._startup_snapshot is not None:
            peers = self._startup_snapshot.voters
        else:
            peers = self.identity.voters
        security = self.config.peer_security or PeerSecurity()
        if self.config.secret:
            security = PeerSecurity.from_secret(
                self.config.secret, server_tls=security.server_tls,
                client_tls=security.client_tls, allowed_cn=security.allowed_cn)
        largest_entry = max(8 * 1024 * 1024, self.config.limits.max_request_bytes + 1024 * 1024)
        self.peer_settings = PeerSettings(
            address=self_address,
            security=security,
            cluster_id=lambda: self.identity.cluster_id,
            learn_cluster_id=self.identity.learn_cluster_id,
            is_learner=lambda address: address in self.membership.learners(),
            members_answer=self._members_answer,
            # an append carries up to one batch plus one entry; a snapshot chunk is 64 KiB
            max_frame=2 * largest_entry + 1024 * 1024,
            max_send_buffer=max(128 * 1024 * 1024, 4 * largest_entry),
            bind_address=self.config.bind_address,
        )
        conf = SyncObjConf(
            journalFile=journal,
            fullDumpFile=self._snapshot_path,
            appendEntriesUseBatch=False,
            appendEntriesPeriod=self.config.heartbeat_interval,
            raftMinTimeout=self.config.election_timeout_min,
            raftMaxTimeout=self.config.election_timeout_max,
            leaderFallbackTimeout=self.config.leader_fallback_timeout,
            connectionTimeout=max(3.5, self.config.election_timeout_max * 2),
            connectionRetryTime=0.2,
            # one message carries any single entry: pysyncobj's chunked
            # transmission of a larger one would pickle it
            appendEntriesBatchSizeBytes=largest_entry,
            logCompactionMinEntries=self.config.snapshot_min_entries,
            logCompactionMinTime=self.config.snapshot_min_seconds,
            dynamicMembershipChange=True,
            commandsWaitLeader=True,
            onStateChanged=self._on_state_changed,
        )
        try:
            super().__init__(
                None if learner else self_address, [p for p in peers if p != self_address], conf,
                transportClass=SyncingTransport,
            )
        except BaseException:
            journal.close()
            raise
        # pysyncobj stops ticking once the thread that created it ends; a
        # member lives until closed, whichever thread started it
        self._SyncObj__mainThread = threading.main_thread()
        self.addOnTickCallback(self._on_tick)

    # ---- the data directory -----------------------------------------------------

    def _open_storage(self) -> tuple[DurableJournal, SnapshotMeta | None]:
        """Open the log and the snapshot, check them against each other and
        this member's identity, load the snapshot's state, and trim the log
        to start where the snapshot ends. Raises DataDirError (naming the file)
        for anything that is not this member's intact data."""
        for stale in glob.glob(os.path.join(self.data_dir, "snapshot.*.tmp")):
            os.remove(stale)  # a snapshot a crash interrupted, never in use
        try:
            journal = DurableJournal(os.path.join(self.data_dir, "raft.log"), self.stats.fsync)
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
        self._SyncObj__needLoadDumpFile = False  # loaded already, by our own reader
        meta = self._startup_snapshot
        if meta is not None:
            self._adopt_snapshot(meta)
        self._startup_snapshot = None

    def _adopt_snapshot(self, meta: SnapshotMeta) -> None:
        """Raft's indexes and configuration after the state became the snapshot's."""
        self._SyncObj__raftLastApplied = meta.index
        if self._SyncObj__raftCommitIndex < meta.index:
            self._SyncObj__raftCommitIndex = meta.index
            self._journal.setRaftCommitIndex(meta.index)
        self._SyncObj__raftCommitIndex = min(self._SyncObj__raftCommitIndex, self._SyncObj__getCurrentLogIndex())
        self._SyncObj__updateClusterConfiguration([v for v in meta.voters if v != self.address])

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

    def leases_by_expiry(self) -> list[int]:
        """The store's leases, soonest to expire first (call under ``lock``)."""
        return self.deadlines.by_expiry([lease.id for lease in self.store.lessor.leases()])

    def lease_remaining(self, lease_id: int) -> int:
        """Seconds the lease has left by this member's clock (call under ``lock``)."""
        return self.deadlines.remaining(lease_id, self._clock())

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
        inner = unwrapped(request)
        if isinstance(inner, LeaseGrantRequest) and inner.id == 0:
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

        self.stats.proposal_started()
        self._applyCommand(data, on_applied, command_type)
        if not done.acquire(timeout=timeout or self.config.request_timeout):
            self.stats.proposal_ended(failed=True)
            raise RequestTimedOut()
        result, error = outcome[0]
        self.stats.proposal_ended(failed=error != FAIL_REASON.SUCCESS)
        if error != FAIL_REASON.SUCCESS:
            raise error_for_fail_reason(error)
        if isinstance(result, Exception):
            raise result
        return result

    def _SyncObj__doApplyCommand(self, command):  # noqa: N802 (overrides pysyncobj's applier)
        tag = command[:1]
        if tag == _MEMBER_TAG:
            return self._apply_member_change(command[1:])
        if tag == _NO_OP_TAG:
            return None
        if tag == _MEMBERSHIP_TAG:
            # after a restart, pysyncobj learns configuration changes as it applies the log
            change = self._SyncObj__parseChangeClusterRequest(command)
            if change is not None:
                self._notice_own_removal(change)
                self._SyncObj__doChangeCluster(change)
            return None
        if tag != _COMMAND_TAG:
            # pysyncobj's own replicated calls and code versions are pickles: raftkv writes none
            log.error("log entry of an unknown kind skipped tag=%r", tag)
            return None
        try:
            entry = decode_request(command[1:])
        except WireError as e:
            log.error("undecodable log entry skipped error=%s", e)
            return e
        request = unwrapped(entry)
        now = self._clock()
        with self.lock:
            try:
                response = self.store.apply(entry)
                failpoints.hit("apply-before-response")
            except RaftKVError as e:
                return e
            except Exception as e:  # a bug: every member fails the same way, so keep going
                log.exception("apply failed request=%s", type(request).__name__)
                return RaftKVError(f"raftkv: apply failed: {e}")
            if isinstance(response, AuthResponse):
                self.tokens.record(request, response, now)
            elif isinstance(request, LeaseGrantRequest):
                self.deadlines.start(request.id, response.ttl, now)
            elif isinstance(request, LeaseRevokeRequest):
                self.deadlines.remove(request.id)
                self._revoking.discard(request.id)
        return response

    def token_user(self, token: str) -> str | None:
        """The user an auth token names here, or None (call under ``lock``)."""
        return self.tokens.user(token, self._clock(), self.store.auth.revision)

    def issue_token(self, user: str, auth_revision: int) -> str:
        """A new token for ``user`` of this member's kind (simple or JWT)."""
        return self.tokens.issue(user, auth_revision, self._clock())

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

    def _members_answer(self) -> str:
        """What a starting member asks on the peer port: is it a learner?"""
        with self.lock:
            return self.membership.to_json()

    def _SyncObj__parseChangeClusterRequest(self, command):  # noqa: N802 (replaces pysyncobj's pickle)
        if command[:1] != _MEMBERSHIP_TAG:
            return None
        try:
            change = codec.decode(bytes(command[1:]))
        except codec.DecodeError:
            change = None
        if not (isinstance(change, list) and len(change) == 2 and change[0] in ("add", "rem")
                and isinstance(change[1], str)):
            log.error("undecodable configuration change skipped")
            return None
        return change

    def _SyncObj__doChangeCluster(self, request, reverse=False):  # noqa: N802 (extends pysyncobj's)
        failpoints.hit("membership-change")
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

    def _notice_own_removal(self, change: list) -> None:
        if change[0] == "rem" and change[1] == self.address:
            log.warning("this member was removed from the cluster address=%s", self.address)
            self.removed.set()

    def connected_voters(self) -> set[str]:
        """The other voting members this one has a live peer connection with."""
        transport = self._SyncObj__transport
        return {node.id for node in list(self._voters()) if transport.is_connected(node)}

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

            change = ["add", add] if add is not None else ["rem", remove]
            self._applyCommand(codec.encode(change), finish, _MEMBERSHIP_TAG[0])
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
        if isinstance(kind, str) and kind.startswith("rk_"):
            self._on_raftkv_message(node, message, kind)
            return
        problem = message_problem(message)
        if problem is not None:
            log.warning("ignored a malformed peer message peer=%s problem=%s", getattr(node, "id", node), problem)
            return
        if kind in ("request_vote", "append_entries") and node not in self._voters():
            return  # e.g. a member just removed: it must not disturb the others
        if kind == "next_node_idx" and self.is_leader:
            message = self._checked_next_index(node, message)
            if message is None:
                return
        if kind == "append_entries" and message["term"] >= self._SyncObj__raftCurrentTerm:
            if "prevLogIdx" in message:
                self._on_append_entries(node, message)
                return
            if "serialized" in message:
                self._follow(node, message)
                self._on_snapshot_chunk(node, message["serialized"])
                return
        SyncObj._SyncObj__onMessageReceived(self, node, message)

    def snapshot_sent(self, node) -> None:
        """The last piece of the snapshot file went to ``node``."""
        self._snapshot_sent_at[node] = self._clock()

    def _checked_next_index(self, node, message: dict) -> dict | None:
        """A follower's answer about where its log ends, as the leader may act on it."""
        if node not in self._SyncObj__raftMatchIndex:
            return None  # not (or no longer) one of the members this leader sends to
        wanted = message["next_node_idx"]
        if wanted > self._journal[0][1]:
            return message
        sent = self._snapshot_sent_at.get(node)
        if sent is not None and self._clock() - sent < 2 * self.config.election_timeout_max:
            # answers it gave before the snapshot it was just sent arrived: sending
            # the snapshot again for each would keep it installing the same one
            return None
        if not os.path.exists(self._snapshot_path):
            # below a log with no snapshot to send instead: it needs the log from its start
            return {**message, "next_node_idx": self._journal[0][1] + 1}
        return message

    def _follow(self, node, message) -> None:
        """pysyncobj's bookkeeping of a valid leader's message (term, leader,
        election deadline, follower state), on a copy without log operations."""
        SyncObj._SyncObj__onMessageReceived(self, node, {
            "type": "append_entries",
            "term": message["term"],
            "commit_index": self._SyncObj__raftCommitIndex,
        })
        self._leader_contact = self._clock()

    def _on_append_entries(self, node, message) -> None:
        # pysyncobj's bookkeeping first, then the log operation by Raft's rules
        if self._conflicts_with_committed(message.get("entries", ())):
            # Raft guarantees a leader never does this: whoever sent it is not
            # a leader to follow (an impostor, without a peer secret)
            log.critical("refused an append conflicting with committed entries peer=%s commit=%d",
                         getattr(node, "id", node), self._SyncObj__raftCommitIndex)
            return
        self._follow(node, message)
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

    def _conflicts_with_committed(self, entries) -> bool:
        commit = self._SyncObj__raftCommitIndex
        for entry in entries:
            if entry[1] > commit:
                return False
            mine = self._SyncObj__getEntries(entry[1], 1)
            if mine and mine[0][2] != entry[2]:
                return True
        return False

    def _truncate_conflict(self, index: int) -> None:
        for entry in reversed(self._SyncObj__getEntries(index)):
            change = self._SyncObj__parseChangeClusterRequest(entry[0])
            if change is not None:
                self._SyncObj__doChangeCluster(change, reverse=True)
        log.info("truncating conflicting log suffix from_index=%d", index)
        self._SyncObj__deleteEntriesFrom(index)

    # ---- snapshots ------------------------------------------------------------------

    def _SyncObj__tryLogCompaction(self):  # noqa: N802 (replaces pysyncobj's pickling snapshots)
        state = self._writer.poll()
        if state is WriterState.DONE:
            self._install_written_snapshot()
        elif state is WriterState.FAILED:
            self._discard(self._writer.path)
            self._writing = None
            self._snapshot_retry_at = self._clock() + 5.0  # e.g. a full disk: not on every tick
        if self._writer.busy or self._clock() < self._snapshot_retry_at:
            return
        forced = self._SyncObj__forceLogCompaction
        due = (len(self._journal) > self.config.snapshot_min_entries
               or self._clock() - self._last_snapshot_at > self.config.snapshot_min_seconds)
        if not (due or forced):
            return
        self._SyncObj__forceLogCompaction = False
        self._last_snapshot_at = self._clock()
        applied = self.applied_index
        entries = self._SyncObj__getEntries(applied - 1, 2)
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
        failpoints.hit("snapshot-before-install")
        install_file(self._writer.path, self._snapshot_path)
        failpoints.hit("snapshot-before-trim")
        self._SyncObj__deleteEntriesTo(meta.index - 1)
        # a follower being sent the previous file starts again with this one
        for node in self._voters() | self._SyncObj__readonlyNodes:
            self._SyncObj__serializer.cancelTransmisstion(node)
        log.info("snapshot written index=%d term=%d log_entries=%d", meta.index, meta.term, len(self._journal))

    def _SyncObj__loadDumpFile(self, clearJournal):  # noqa: N802,N803 (pysyncobj's loader: never used)
        log.error("pysyncobj asked to load a snapshot by itself; ignored")

    def _on_snapshot_chunk(self, node, chunk) -> None:
        """A piece of the leader's snapshot file (pysyncobj sends the file in
        chunks). The whole file is checked before anything is replaced."""
        if chunk is None:
            return
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
            meta = read_meta(path)
            if self.identity.cluster_id and meta.cluster_id and meta.cluster_id != self.identity.cluster_id:
                raise SnapshotError(path, 0, f"a snapshot of another cluster ({meta.cluster_id:x})")
        except SnapshotError as e:
            log.error("received snapshot refused leader=%s error=%s", getattr(node, "id", node), e)
            self._discard(path)
            return
        if meta.index <= self.applied_index:
            # sent again on an answer from before the last install: this member has
            # it all, and going back to it would apply (and announce) revisions twice
            log.info("received snapshot already applied index=%d applied=%d", meta.index, self.applied_index)
            self._discard(path)
            self._SyncObj__sendNextNodeIdx(node, nextNodeIdx=self.applied_index + 1, success=True)
            return
        failpoints.hit("received-snapshot-before-install")
        self._writer.abandon()  # a snapshot of our own older state must not replace this one
        self._discard(self._writer.path)
        self._writing = None
        with self.lock:
            load_snapshot(path, self.store, self.membership)  # checked above: no error expected
        self._leases_restored()
        install_file(path, self._snapshot_path)
        failpoints.hit("received-snapshot-before-trim")
        self._journal.restart_from(meta.entries)
        self._adopt_snapshot(meta)
        log.info("installed the leader's snapshot index=%d term=%d", meta.index, meta.term)
        self._SyncObj__sendNextNodeIdx(node, nextNodeIdx=meta.index + 1, success=True)

    def _close_received(self) -> None:
        if self._receiving is not None:
            os.close(self._receiving[1])
            self._receiving = None

    @staticmethod
    def _discard(path: str | None) -> None:
        if path:
            try:
                os.remove(path)
            except FileNotFoundError:
                pass

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
                # only the leader of this very term may say so (without a peer
                # secret, anyone can claim to be a member; not to be the leader)
                if message["term"] == self.term and node == self._SyncObj__raftLeader and not self.is_leader:
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

    def _onTick(self, timeToWait=0.0):  # noqa: N802,N803 (wraps pysyncobj's tick)
        if self.failed.is_set():
            time.sleep(timeToWait or 0.1)
            return
        try:
            if not self._started:
                self._started = True
                self._finish_start()
            SyncObj._onTick(self, timeToWait)
        except StorageFailure as e:
            self._stop_taking_part(e)

    def _stop_taking_part(self, error: Exception) -> None:
        """Storage failed: what this member would acknowledge, vote or apply
        next is not on disk. It stops sending anything and closes its peer
        connections; the process that runs it should exit (``failed``)."""
        log.critical("storage failed; this member stops taking part in the cluster data_dir=%s error=%s",
                     self.data_dir, error)
        self.failure = error
        self.failed.set()
        self._writer.abandon()
        try:
            self._SyncObj__transport.destroy()
        except Exception:  # noqa: BLE001 - already failing; the transport is best effort
            log.exception("closing the peer transport failed")

    def _on_tick(self) -> None:
        # Entries written during this tick become durable before the next
        # tick's commit computation counts the leader's own copy.
        self._sync_journal()
        self.stats.saw_leader(self.leader_address)
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
        if now - self._tokens_swept > self.config.auth_token_ttl / 10:
            self._tokens_swept = now
            with self.lock:
                self.tokens.expire(now)
        self._drop_removed(now)
        if self.learner:
            self._report_progress(now)

    # ---- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        self.destroy_synchronous()
        self._writer.abandon()
        if self._receiving is not None:
            os.close(self._receiving[1])
            self._receiving = None
        if not self.failed.is_set():
            self._sync_journal()
