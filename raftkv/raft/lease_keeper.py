"""Leases on a member: the leader decides expiry by its own clock and revokes
through the log; keep-alives renew the leader's deadline without a log entry
(a follower forwards them to the leader)."""

from __future__ import annotations

import logging
import threading

from raftkv.errors import LeaderChanged, LeaseNotFound, NoLeader, RequestTimedOut
from raftkv.mvcc.requests import LeaseRevokeRequest
from raftkv.raft.engine import COMMAND_TYPE, Engine
from raftkv.wire import encode_request

log = logging.getLogger(__name__)


class LeaseKeeper(Engine):
    LEASE_MESSAGES = frozenset({"rk_keepalive", "rk_keepalive_result"})

    def _init_leases(self) -> None:
        self._keepalives: dict[int, tuple[int, object]] = {}
        self._revoking: set[int] = set()  # expired, their revoke on its way through the log

    def leases_by_expiry(self) -> list[int]:
        """The store's leases, soonest to expire first (call under ``lock``)."""
        return self.deadlines.by_expiry([lease.id for lease in self.store.lessor.leases()])

    def lease_remaining(self, lease_id: int) -> int:
        """Seconds the lease has left by this member's clock (call under ``lock``)."""
        return self.deadlines.remaining(lease_id, self._clock())

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
        leader = self._leader_node
        if leader is None:
            finish(None, NoLeader())
            return
        request_id = next(self._ids)
        self._keepalives[request_id] = (lease_id, finish)
        self._transport.send(leader, {"type": "rk_keepalive", "id": request_id, "lease": lease_id})

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

    def _leases_after_leader_change(self, became_leader: bool) -> None:
        if became_leader:
            # as etcd's new leader: every lease gets its full TTL again, so
            # none expires because leadership moved
            with self.lock:
                self.deadlines.extend_all(self._clock())
            self._revoking.clear()
        for _, finish in list(self._keepalives.values()):
            finish(None, LeaderChanged())
        self._keepalives.clear()

    def _on_lease_message(self, node, message: dict, kind: str) -> None:
        if kind == "rk_keepalive":
            ttl, error = self._renew(int(message["lease"])) if self.is_leader else (None, LeaderChanged())
            self._transport.send(node, {
                "type": "rk_keepalive_result", "id": message["id"], "ttl": ttl,
                "error": type(error).__name__ if error else None,
            })
        elif kind == "rk_keepalive_result":
            pending = self._keepalives.pop(message["id"], None)
            if pending is not None:
                error = {"LeaseNotFound": LeaseNotFound, "LeaderChanged": LeaderChanged}.get(message["error"])
                pending[1](message["ttl"], error() if error else None)
