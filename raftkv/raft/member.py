"""A Raft member: pysyncobj 0.3.17, extended through its hooks, carrying the KV store.

What this adds to pysyncobj, each through an extension point, one concern a module:

- ``engine``: the one module that knows pysyncobj's private names; the
  others use its accessors and hooks;
- the journal (``journal``) through pysyncobj's journal factory: term and
  vote fsynced before they are used, entries fsynced in groups;
- a transport subclass (below) that syncs the journal before any message
  leaves, so no append is acknowledged and no vote granted before it is
  durable; a tick callback that syncs the journal before the leader counts
  its own copy toward commit (one fsync per tick for everything written in it);
- log entries are raftkv's own command type holding the protobuf-encoded
  request (``raftkv.wire``), applied here;
- the AppendEntries receiver (``append_receiver``): an entry is truncated
  only on a term conflict, never because a message repeats entries;
- linearizable reads (``read_index``) through Raft's ReadIndex;
- leases (``lease_keeper``): expiry decided by the leader and applied as a
  revoke through the log; keep-alives renew without a log entry;
- membership (``reconfiguration``): configuration changes as entries of our
  own, the membership table, learners, leadership transfer;
- snapshots (``snapshotting``): of our own, written by a child that dies with
  the member and renamed into place only when complete; the log is trimmed to
  a snapshot on start, never cleared because of one; a damaged snapshot or log
  stops the member instead of being served;
- peer messages on raftkv's own transport (``transport``): plain values,
  bounded frames, a handshake that checks cluster, member and secret or TLS;
- a data directory that records whose it is (``identity``);
- a failed write or fsync stops the member (``StorageFailure``): no vote,
  no acknowledgement, no term it has not stored.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pysyncobj import SyncObj, SyncObjConf
from pysyncobj.config import FAIL_REASON

from raftkv.errors import RaftKVError, RequestTimedOut
from raftkv.mvcc.auth import AuthResponse
from raftkv.mvcc.expiry import LeaseDeadlines
from raftkv.mvcc.permissions import unwrapped
from raftkv.mvcc.requests import LeaseGrantRequest, LeaseRevokeRequest
from raftkv.mvcc.store import KVStore, StoreLimits
from raftkv.mvcc.tokens import DEFAULT_TOKEN_TTL, SimpleTokens, TokenProvider
from raftkv.raft import failpoints
from raftkv.raft.append_receiver import AppendReceiver
from raftkv.raft.engine import (
    COMMAND_TYPE,
    MEMBER_COMMAND_TYPE,
    MEMBERSHIP_TAG,
    NO_OP_TAG,
    STATE_LEADER,
    error_for_fail_reason,
)
from raftkv.raft.identity import DataDirIdentity, derive_cluster_id, open_identity
from raftkv.raft.lease_keeper import LeaseKeeper
from raftkv.raft.log_segments import SEGMENT_BYTES
from raftkv.raft.membership import MembershipTable
from raftkv.raft.peer_auth import PeerSecurity
from raftkv.raft.read_index import ReadIndex
from raftkv.raft.reconfiguration import Reconfiguration
from raftkv.raft.snapshotting import Snapshotting
from raftkv.raft.stats import RaftStats
from raftkv.raft.storage import StorageFailure
from raftkv.raft.transport import PeerSettings, PeerTransport
from raftkv.wire import WireError, decode_request, encode_request

SLOW_TICK = 0.1  # seconds past the tick's wait: worth a warning (etcd warns at 100 ms too)

log = logging.getLogger(__name__)

__all__ = ["COMMAND_TYPE", "MemberConfig", "RaftMember", "SyncingTransport"]

_COMMAND_TAG = bytes([COMMAND_TYPE])
_MEMBER_TAG = bytes([MEMBER_COMMAND_TYPE])


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
    # a snapshot is also due once the log outgrows this or half the last
    # snapshot, whichever is larger: a restart replays the log after the
    # snapshot, and the log's entries are held in memory until then
    snapshot_log_bytes: int = 64 << 20
    # the log is kept in files of about this size; a snapshot removes whole ones
    log_segment_bytes: int = SEGMENT_BYTES
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


class RaftMember(ReadIndex, LeaseKeeper, Reconfiguration, AppendReceiver, Snapshotting):
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
        self._batching = False
        self._send_deferred = False
        self.failed = threading.Event()  # set when storage failed: the member stopped taking part
        self.failure: Exception | None = None
        self._started = False
        self._tick_work_done = 0.0
        self._init_reads()
        self._init_leases()
        self._init_membership()
        self._init_receiver()
        self._init_snapshots()

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
        # a member lives until closed, whichever thread started it
        self._keep_ticking_after_creator_exits()
        self.addOnTickCallback(self._on_tick)

    @property
    def leader_address(self) -> str | None:
        """The leader this member follows, or None if it has not heard from
        one within an election timeout (pysyncobj alone would keep naming a
        lost leader while no peer is reachable)."""
        leader = self._leader_node
        if leader is None:
            return None
        if not self.is_leader and self._clock() - self._leader_contact > self.config.election_timeout_max:
            return None
        return leader.address

    # ---- writes ------------------------------------------------------------------

    def propose(self, request: object, timeout: float | None = None) -> object:
        """Replicate a request; return its response once applied here."""
        inner = unwrapped(request)
        if isinstance(inner, LeaseGrantRequest) and inner.id == 0:
            raise ValueError("choose the lease id before proposing")
        return self._propose_raw(encode_request(request), COMMAND_TYPE, timeout)

    def propose_async(self, request: object, done: Callable[[object, BaseException | None], None]) -> None:
        """Replicate a request without waiting: ``done(response, None)`` or
        ``done(None, error)`` is called on the Raft thread once it is applied
        here or has failed. (The caller keeps its own deadline.)"""
        data = encode_request(request)
        self.stats.proposal_started()

        def on_applied(result, error):
            self.stats.proposal_ended(failed=error != FAIL_REASON.SUCCESS)
            if error != FAIL_REASON.SUCCESS:
                done(None, error_for_fail_reason(error))
            elif isinstance(result, Exception):
                done(None, result)
            else:
                done(result, None)

        self._applyCommand(data, on_applied, COMMAND_TYPE)

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

    def _apply_entry(self, command):
        tag = command[:1]
        if tag == _MEMBER_TAG:
            return self._apply_member_change(command[1:])
        if tag == NO_OP_TAG:
            return None
        if tag == MEMBERSHIP_TAG:
            # after a restart, pysyncobj learns configuration changes as it applies the log
            change = self._parse_configuration_change(command)
            if change is not None:
                self._notice_own_removal(change)
                self._change_configuration(change)
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
            self._send_appends_now()

    def _send_appends(self) -> None:
        if self._batching:
            self._send_deferred = True
            return
        self._send_appends_now()

    # ---- raftkv's peer messages ------------------------------------------------

    def _on_raftkv_message(self, node, message: dict, kind: str) -> None:
        try:
            if kind in self.READ_MESSAGES:
                self._on_read_message(node, message, kind)
            elif kind in self.LEASE_MESSAGES:
                self._on_lease_message(node, message, kind)
            elif kind in self.MEMBERSHIP_MESSAGES:
                self._on_membership_message(node, message, kind)
            else:
                log.warning("ignored an unknown peer message type=%s", kind)
        except (KeyError, TypeError, ValueError) as e:
            log.warning("ignored a malformed peer message type=%s error=%s", kind, e)

    def _on_state_changed(self, old_state: int, new_state: int) -> None:
        if new_state == STATE_LEADER:
            log.info("became leader term=%d", self.term)
        elif old_state == STATE_LEADER:
            log.info("stepped down term=%d", self.term)
        self._leases_after_leader_change(became_leader=new_state == STATE_LEADER)

    # ---- the tick --------------------------------------------------------------

    def _submit(self, work: Callable[[], None]) -> None:
        with self._requests_lock:
            self._requests.append(work)
        self._wake()

    def _onTick(self, timeToWait=0.0):  # noqa: N802,N803 (wraps pysyncobj's tick)
        if self.failed.is_set():
            time.sleep(timeToWait or 0.1)
            return
        began = time.perf_counter()
        try:
            if not self._started:
                self._started = True
                self._finish_start()
            SyncObj._onTick(self, timeToWait)
        except StorageFailure as e:
            self._stop_taking_part(e)
        took = time.perf_counter() - began
        if took > timeToWait + SLOW_TICK:
            # the tick's own work ran until its poll; the rest is peer messages (and the wait)
            log.warning("slow raft tick took_ms=%d work_ms=%d fsync_ms=%d leader=%s applied=%d",
                        took * 1000, (self._tick_work_done - began) * 1000,
                        self._journal.last_sync_seconds * 1000, self.is_leader, self.applied_index)

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
            self._transport.destroy()
        except Exception:  # noqa: BLE001 - already failing; the transport is best effort
            log.exception("closing the peer transport failed")

    def _on_tick(self) -> None:
        # Entries written during this tick become durable before the next
        # tick's commit computation counts the leader's own copy.
        self._sync_journal()
        self.stats.saw_leader(self.leader_address)
        if self.is_leader and not self._voters() and self.commit_index < self._last_log_index():
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
        self._tick_work_done = time.perf_counter()

    # ---- lifecycle ---------------------------------------------------------------

    def close(self) -> None:
        self.destroy_synchronous()
        self._writer.abandon()
        self._close_received()
        self._stop_loading()
        if not self.failed.is_set():
            self._sync_journal()
