"""``raftkv.Node``: a cluster member, used through the same interface as ``raftkv.open()``."""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from raftkv import __version__
from raftkv.addresses import BadURL, free_ports, host_port
from raftkv.client.api import KVClient, LeaseTTL, Status, Watch
from raftkv.client.embedded import EmbeddedWatch
from raftkv.errors import (
    BadLeaderTransferee,
    LeaderTransferTimedOut,
    LearnerNotReady,
    LeaseNotFound,
    MemberBadURLs,
    MemberNotFound,
    MemberNotLearner,
    NoSpace,
    NotEnoughStartedMembers,
    NotLeader,
    NotSupportedForLearner,
    PeerURLExists,
    RaftKVError,
    StoreClosed,
    Unhealthy,
)
from raftkv.mvcc.permissions import Authorized, unwrapped
from raftkv.mvcc.requests import (
    AlarmAction,
    AlarmRequest,
    AlarmType,
    DeleteRangeRequest,
    LeaseGrantRequest,
    PutRequest,
    RangeRequest,
    TxnRequest,
)
from raftkv.mvcc.store import KVStore, is_read_only
from raftkv.mvcc.watch import Watcher, WatchResponse
from raftkv.raft.member import MemberConfig, RaftMember
from raftkv.raft.membership import MemberRecord, member_id
from raftkv.raft.stats import RaftStatsSnapshot

log = logging.getLogger(__name__)

# the writes ``submit`` starts without a thread waiting for each
_SUBMITTED = (PutRequest, DeleteRangeRequest, TxnRequest)


class Node(KVClient):
    """A member of a raftkv cluster.

    Writes go through the Raft log and return once applied on this member;
    reads are linearizable (after a ReadIndex barrier) unless ``serializable``.
    """

    LEARNER_MARKER = "learner"  # a file in the data dir: this member is a learner

    def __init__(self, address: str, peers: list[str], data_dir: str,
                 config: MemberConfig | None = None, *, name: str = "",
                 client_urls: list[str] | None = None, learner: bool = False) -> None:
        """A member at peer ``address`` of the cluster ``peers``. With
        ``learner`` (or if it was started as one before) it joins as a
        learner: it follows the log without voting until promoted."""
        self.address = address
        self._peers = list(peers)
        self._data_dir = data_dir
        self._config = config
        os.makedirs(data_dir, exist_ok=True)
        marker = os.path.join(data_dir, self.LEARNER_MARKER)
        if learner and not os.path.exists(marker):
            open(marker, "w").close()
        self._member = RaftMember(address, peers, data_dir, config, learner=os.path.exists(marker))
        self._closed = threading.Event()
        self._auth_current = False
        self._attributes = {"address": address, "name": name, "peer_urls": [f"http://{address}"],
                            "client_urls": list(client_urls or [])}
        threading.Thread(target=self._publish_attributes, name="raftkv-publish", daemon=True).start()
        if self._member.learner:
            threading.Thread(target=self._await_promotion, name="raftkv-promotion", daemon=True).start()

    @property
    def is_learner(self) -> bool:
        return self._member.learner

    def _await_promotion(self) -> None:
        """A learner becomes a voter by restarting its member as one (pysyncobj's
        read-only nodes cannot start voting in place)."""
        old = self._member
        while not old.promoted.wait(0.5):
            if self._closed.is_set():
                return
        log.info("promoted: restarting as a voting member address=%s", self.address)
        with old.lock:
            old.store.watchers.cancel_all()
        old.close()
        os.remove(os.path.join(self._data_dir, self.LEARNER_MARKER))
        self._member = RaftMember(self.address, self._peers, self._data_dir, self._config)

    def _publish_attributes(self) -> None:
        """Make this member's name and client URLs known to the cluster, as etcd members do."""
        while not self._closed.is_set():
            with self._member.lock:
                current = self._member.membership.records.get(self.address)
            if current is not None and current.name == self._attributes["name"] \
                    and current.client_urls == self._attributes["client_urls"]:
                return
            try:
                self._member.publish(self._attributes)
                return
            except Exception as e:  # no leader yet: try again shortly
                log.debug("publishing member attributes failed error=%s", e)
                self._closed.wait(0.5)

    @property
    def member(self) -> RaftMember:
        return self._member

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def raft_term(self) -> int:
        return self._member.term

    @contextlib.contextmanager
    def local_store(self) -> Iterator[KVStore]:
        with self._member.lock:
            yield self._member.store

    # ---- auth --------------------------------------------------------------------

    def authorize(self, user: str | None, request: object) -> int:
        if not self._auth_current and not self._member.learner:
            # after a start, the users and roles are those of the whole log only
            # once it is applied: wait for that once, not before every check
            try:
                self._member.read_barrier()
                self._auth_current = True
            except RaftKVError as e:  # no leader now: the request itself meets that; decide on what is here
                log.info("auth check before catching up with the log error=%s", e)
        with self._member.lock:
            return self._member.store.authorize(user, request)

    def user_for_token(self, token: str) -> str | None:
        with self._member.lock:
            return self._member.token_user(token)

    def issue_token(self, user: str, auth_revision: int) -> str:
        return self._member.issue_token(user, auth_revision)

    def authenticate(self, name: str, password: str) -> str:
        self._check_open()
        self._member.read_barrier()  # as etcd: the password is checked against current state
        return super().authenticate(name, password)

    def raft_stats(self) -> RaftStatsSnapshot:
        return self._member.stats.snapshot()

    def read_barrier(self, timeout: float) -> None:
        self._member.read_barrier(timeout=timeout)

    def _check_open(self) -> None:
        if self._closed.is_set():
            raise StoreClosed()

    def execute(self, request: Any) -> Any:
        """Run a request, or an ``Authorized`` one (its auth revision goes with
        it through the log and is checked again at apply)."""
        self._check_open()
        checked_at = request.auth_revision if isinstance(request, Authorized) else None
        request = unwrapped(request)
        member = self._member
        if member.learner and not (isinstance(request, RangeRequest) and request.serializable):
            raise NotSupportedForLearner()  # as etcd: a learner serves serializable reads only
        if isinstance(request, RangeRequest):
            if not request.serializable:
                member.read_barrier()
            return self._read_in_steps(request)
        with member.lock:
            over_quota = member.store.over_quota(request)
        if over_quota:
            self._raise_no_space()
        if isinstance(request, TxnRequest) and is_read_only(request):
            member.read_barrier()
            with member.lock:
                return member.store.apply(request)
        if isinstance(request, LeaseGrantRequest) and request.id == 0:
            request = LeaseGrantRequest(ttl=request.ttl, id=secrets.randbits(63) or 1)
        with member.lock:
            member.store.admit(request)  # reject bad input before it reaches the log
        return member.propose(request if checked_at is None else Authorized(request, checked_at))

    def submit(self, request: Any, done: Callable[[Any, BaseException | None], None]) -> bool:
        """Writes through the log start here and finish on the Raft thread,
        one-key reads once their read index is applied; ranges and anything
        unusual go to ``execute``."""
        if self._closed.is_set():
            return False
        checked_at = request.auth_revision if isinstance(request, Authorized) else None
        request = unwrapped(request)
        member = self._member
        if isinstance(request, RangeRequest) and not request.range_end and not member.learner:
            self._submit_get(request, done)
            return True
        if member.learner or not isinstance(request, _SUBMITTED) or (
                isinstance(request, TxnRequest) and is_read_only(request)):
            return False
        with member.lock:
            if member.store.over_quota(request):
                return False  # the alarm goes through the log first: execute's path
            member.store.admit(request)  # reject bad input before it reaches the log
        member.propose_async(request if checked_at is None else Authorized(request, checked_at), done)
        return True

    def _submit_get(self, request: RangeRequest, done: Callable[[Any, BaseException | None], None]) -> None:
        """A one-key read: cheap enough to answer on whichever thread may
        serve it (the caller's, or the Raft thread once the read index is applied)."""
        def read() -> None:
            try:
                with self._member.lock:
                    reader = self._member.store.range_reader(request)
                    while not reader.step():
                        pass  # one key: one step
                response = reader.finish()
            except RaftKVError as e:
                done(None, e)
                return
            done(response, None)

        if request.serializable:
            read()
        else:
            self._member.read_barrier_async(read)

    def _raise_no_space(self) -> None:
        """etcd's answer to a write that would take this member past its
        quota: the NOSPACE alarm for this member, through the log, and the error."""
        log.warning("write refused: the store reached its quota, raising the NOSPACE alarm "
                    "quota_backend_bytes=%d", self._member.store.limits.quota_backend_bytes)
        try:
            self._member.propose(AlarmRequest(AlarmAction.ACTIVATE, member_id(self.address), AlarmType.NOSPACE))
        except RaftKVError as e:
            log.warning("the NOSPACE alarm was not raised error=%s", e)
        raise NoSpace()

    def _read_in_steps(self, request: RangeRequest) -> object:
        """A range read that takes the store's lock a few thousand keys at a
        time, so that a large read never holds up the writes applied meanwhile
        (it reads at the revision it began at)."""
        member = self._member
        with member.lock:
            reader = member.store.range_reader(request)
            done = reader.step()
        while not done:
            time.sleep(0)  # let a writer waiting for the lock have it
            with member.lock:
                done = reader.step()
        return reader.finish()

    def lease_keep_alive(self, lease_id: int) -> int:
        self._check_open()
        if self._member.learner:
            raise NotSupportedForLearner()
        return self._member.keep_alive(lease_id)

    def lease_time_to_live(self, lease_id: int, keys: bool = False) -> LeaseTTL:
        self._check_open()
        member = self._member
        member.read_barrier()
        with member.lock:
            try:
                lease = member.store.lessor.get(lease_id)
            except LeaseNotFound:
                return LeaseTTL(id=lease_id, ttl=-1, granted_ttl=0)
            remaining = member.lease_remaining(lease_id)
            return LeaseTTL(id=lease_id, ttl=remaining, granted_ttl=lease.ttl,
                            keys=sorted(lease.keys) if keys else [])

    def leases(self) -> list[int]:
        self._check_open()
        self._member.read_barrier()
        with self._member.lock:
            return self._member.leases_by_expiry()

    def open_watch(self, key: bytes, range_end: bytes, start_revision: int, prev_kv: bool,
                   no_put: bool, no_delete: bool, progress_notify: bool) -> Watch:
        self._check_open()
        member = self._member

        def create(on_ready: Callable[[], None]) -> Watcher:
            return member.store.watchers.watch(
                key, range_end, start_revision, prev_kv=prev_kv, no_put=no_put,
                no_delete=no_delete, progress_notify=progress_notify, on_ready=on_ready)

        with member.lock:
            return EmbeddedWatch(self, create)

    # EmbeddedWatch's hooks: pending responses of watchers on this store, and their cancellation
    def poll_watchers(self, watchers: list[Watcher]) -> list[list[WatchResponse]]:
        with self._member.lock:
            poll = self._member.store.watchers.poll
            return [poll(w) for w in watchers]

    def cancel_watcher(self, watcher: Watcher) -> None:
        with self._member.lock:
            self._member.store.watchers.cancel(watcher)

    def status(self) -> Status:
        self._check_open()
        member = self._member
        with member.lock:
            store = member.store
            leader = member.leader_address
            return Status(
                version=__version__,
                member_id=member_id(self.address),
                leader=member_id(leader) if leader else 0,
                raft_term=member.term,
                raft_index=member.commit_index,
                raft_applied_index=member.applied_index,
                revision=store.revision,
                compact_revision=max(store.compact_revision, 0),
                key_count=store.key_count,
                lease_count=len(store.lessor),
                watcher_count=len(store.watchers),
                is_learner=member.learner,
                db_size=store.size,
                db_size_in_use=store.size_in_use,
            )

    # ---- membership ----------------------------------------------------------------

    def members(self) -> list[MemberRecord]:
        member = self._member
        with member.lock:
            return member.membership.members(member.voting_addresses())

    def member_add(self, peer_urls: list[str], is_learner: bool = False) -> MemberRecord:
        self._check_open()
        try:
            addresses = {host_port(url) for url in peer_urls}
        except BadURL:
            raise MemberBadURLs() from None
        if len(addresses) != 1:
            raise MemberBadURLs()
        (address,) = addresses
        with self._member.lock:
            learners = self._member.membership.learners()
        if address in self._member.voting_addresses() or address in learners:
            raise PeerURLExists()
        if is_learner:
            # a learner needs no Raft configuration change: it follows as a read-only node
            self._member.publish({"address": address, "peer_urls": list(peer_urls), "is_learner": True})
        else:
            self._check_reconfiguration()
            self._member.change_membership(add=address)
            self._member.publish({"address": address, "peer_urls": list(peer_urls)})
        return MemberRecord(address, peer_urls=list(peer_urls), is_learner=is_learner)

    def member_promote(self, id_: int) -> None:
        """Make a learner a voting member (etcd's MemberPromote)."""
        self._check_open()
        member = self._member
        with member.lock:
            records = {r.id: r for r in member.membership.records.values()}
        record = records.get(id_)
        if record is None or not record.is_learner:
            if record is None and id_ not in {member_id(a) for a in member.voting_addresses()}:
                raise MemberNotFound()
            if record is not None and not record.name:
                # etcd asks that the member be in sync before it asks that it be a
                # learner: a voter that never started is not in sync
                raise LearnerNotReady()
            raise MemberNotLearner()
        if not member.follower_caught_up(record.address):
            raise LearnerNotReady()
        member.change_membership(add=record.address)
        member.publish({"address": record.address, "is_learner": False})

    def member_remove(self, id_: int) -> None:
        self._check_open()
        member = self._member
        targets = [a for a in member.voting_addresses() if member_id(a) == id_]
        if not targets:
            with member.lock:
                learner = next((a for a in member.membership.learners() if member_id(a) == id_), None)
            if learner is None:
                raise MemberNotFound()
            # a learner leaves by being forgotten; it stops once it is told
            member.publish({"address": learner, "is_learner": True, "removed": True})
            return
        (target,) = targets
        self._check_reconfiguration(removing=target)
        # pysyncobj's leader cannot remove itself: leadership moves first
        if target == member.leader_address:
            if member.is_leader:
                member.transfer_leadership()
            else:
                member.ask_leader_to_step_down()
        if target != self.address:
            member.change_membership(remove=target)
            return
        # The others drop a removed member at once, so it would never hear the
        # outcome of its own removal: another member carries it out instead.
        from raftkv.client.remote import Client

        others = [r for r in self.members() if r.address != self.address and r.client_urls]
        if not others:
            raise Unhealthy()
        with Client([url for r in others for url in r.client_urls],
                    timeout=member.config.request_timeout) as client:
            client.member_remove(id_)
        member.removed.set()

    def _check_reconfiguration(self, removing: str | None = None) -> None:
        """etcd's --strict-reconfig-check: a voting member is added only while a
        quorum of the grown cluster has started (published its name) and this
        member reaches every other voter; one is removed only while a quorum of
        the rest has started and, unless it is already unreachable, enough
        voters stay reachable."""
        member = self._member
        if not member.config.strict_reconfig_check:
            return
        with member.lock:
            voters = member.membership.members(member.voting_addresses())
        voters = [r for r in voters if not r.is_learner]
        connected = member.connected_voters()
        if removing is None:
            started = sum(1 for r in voters if r.name)
            size = len(voters) + 1
            if not (started == 1 and size == 2) and started < size // 2 + 1:
                raise NotEnoughStartedMembers()
            if {r.address for r in voters} - {self.address} - connected:
                raise Unhealthy()
            return
        rest = [r for r in voters if r.address != removing]
        if sum(1 for r in rest if r.name) < len(rest) // 2 + 1:
            raise NotEnoughStartedMembers()
        if removing != self.address and removing not in connected:
            return  # a member that is down is no part of the working quorum
        reachable = 1 + len(connected & {r.address for r in voters})
        if reachable - 1 < 1 + (len(voters) - 1) // 2:
            raise Unhealthy()

    def move_leader(self, target_id: int, timeout: float) -> None:
        """etcd's MoveLeader: only the leader takes it; it returns once the
        transferee leads, or raises LeaderTransferTimedOut after ``timeout``."""
        self._check_open()
        member = self._member
        if not member.is_leader:
            raise NotLeader()
        if target_id == member_id(self.address):
            return  # already leads: etcd answers at once
        addresses = [a for a in member.voting_addresses() if member_id(a) == target_id]
        if not addresses:
            raise BadLeaderTransferee()
        (address,) = addresses
        deadline = time.monotonic() + timeout
        log.info("leadership transfer starting transferee=%s", address)
        while member.leader_address != address:
            left = deadline - time.monotonic()
            if left <= 0:
                raise LeaderTransferTimedOut()
            if member.is_leader:
                try:
                    member.transfer_leadership(to=address, timeout=min(left, 1.0))
                except RaftKVError as e:
                    # refused while the transferee lags, or another member
                    # won instead: etcd keeps waiting for the transferee
                    log.debug("leadership transfer not done yet error=%s", e)
            time.sleep(min(max(member.config.heartbeat_interval, 0.01), max(left, 0)))
        log.info("leadership transfer finished new_leader=%s", address)

    def close(self) -> None:
        if self._closed.is_set():
            return
        self._closed.set()
        with self._member.lock:
            self._member.store.watchers.cancel_all()
        self._member.close()


def open_durable(path: str, limits=None, **options) -> Node:
    """A one-member Node on a loopback port of its own, kept in the data
    directory so that the member keeps its Raft identity across restarts."""
    os.makedirs(path, exist_ok=True)
    address_file = os.path.join(path, "address")
    try:
        with open(address_file) as f:
            address = f.read().strip()
    except FileNotFoundError:
        address = f"127.0.0.1:{free_ports(1)[0]}"
        with open(address_file, "w") as f:
            f.write(address)
    config = MemberConfig(limits=limits) if limits is not None else MemberConfig()
    for name, value in options.items():
        setattr(config, name, value)
    return Node(address, [address], path, config)
