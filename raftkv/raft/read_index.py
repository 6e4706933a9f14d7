"""Linearizable reads (Raft's ReadIndex): the leader records its commit index,
confirms with a majority that it still leads, and the reads waiting on that
round are served once this member has applied up to it. A follower asks the
leader for a read index and waits to apply up to it."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from raftkv.errors import RequestTimedOut
from raftkv.raft.engine import Engine

log = logging.getLogger(__name__)


@dataclass
class ReadWaiter:
    """A read waiting for a read index, then for it to be applied."""

    done: threading.Event = field(default_factory=threading.Event)
    index: int | None = None
    error: Exception | None = None
    # called on the Raft thread once the read may be served (read_barrier_async)
    on_ready: Callable[[], None] | None = None

    def ready(self) -> None:
        self.done.set()
        if self.on_ready is not None:
            try:
                self.on_ready()
            except Exception:  # noqa: BLE001 - a reader's failure must not stop the Raft thread
                log.exception("a read's continuation failed")


@dataclass
class ReadRound:
    id: int
    term: int
    index: int
    started: float
    acks: set = field(default_factory=set)
    local: list[ReadWaiter] = field(default_factory=list)
    remote: list[tuple[object, int]] = field(default_factory=list)


class ReadIndex(Engine):
    def _init_reads(self) -> None:
        self._pending_reads: list[ReadWaiter] = []
        self._remote_reads: list[tuple[object, int]] = []
        self._forwarded_reads: dict[int, list[ReadWaiter]] = {}
        self._forwarded_at: dict[int, float] = {}
        self._round: ReadRound | None = None
        self._applying: list[ReadWaiter] = []

    def read_barrier(self, timeout: float | None = None) -> None:
        """Return once this member has applied everything committed before the
        call, as confirmed by a current leader (Raft's ReadIndex)."""
        waiter = ReadWaiter()
        self._submit(lambda: self._pending_reads.append(waiter))
        if not waiter.done.wait(timeout or self.config.request_timeout):
            raise RequestTimedOut()
        if waiter.error is not None:
            raise waiter.error

    def read_barrier_async(self, on_ready: Callable[[], None]) -> None:
        """``read_barrier`` without waiting: ``on_ready()`` runs on the Raft
        thread once a read may be served (keep it short). The caller keeps its
        own deadline."""
        waiter = ReadWaiter(on_ready=on_ready)
        self._submit(lambda: self._pending_reads.append(waiter))

    def _leader_ready(self) -> bool:
        # A new leader knows the commit index only once an entry of its own
        # term (the no-op it appends on election) is committed.
        noop = self._noop_index
        return self.is_leader and noop is not None and self.commit_index >= noop

    def _progress_reads(self, now: float) -> None:
        if self.is_leader:
            round_ = self._round
            if round_ is not None and (round_.term != self.term or now - round_.started > 1.0):
                # leadership changed or the round stalled: its waiters try again
                self._pending_reads.extend(round_.local)
                self._remote_reads.extend(round_.remote)
                self._round = round_ = None
            if round_ is None and (self._pending_reads or self._remote_reads) and self._leader_ready():
                round_ = ReadRound(next(self._ids), self.term, self.commit_index, now,
                                   local=self._pending_reads, remote=self._remote_reads)
                self._pending_reads, self._remote_reads = [], []
                self._round = round_
                for node in self._voters():
                    self._transport.send(node, {"type": "rk_ping", "id": round_.id, "term": round_.term})
                self._maybe_finish_round()
        else:
            if self._round is not None:
                self._pending_reads.extend(self._round.local)
                self._round = None
            self._remote_reads.clear()  # their members will ask the new leader
            leader = self._leader_node
            if self._pending_reads and leader is not None:
                request_id = next(self._ids)
                self._forwarded_reads[request_id] = self._pending_reads
                self._forwarded_at[request_id] = now
                self._pending_reads = []
                self._transport.send(leader, {"type": "rk_read", "id": request_id})
            for request_id, sent in list(self._forwarded_at.items()):
                if now - sent > 1.0:  # lost with a leader change: ask again
                    del self._forwarded_at[request_id]
                    self._pending_reads.extend(self._forwarded_reads.pop(request_id, []))
        applied = self.applied_index
        still = []
        for waiter in self._applying:
            if waiter.index <= applied:
                waiter.ready()
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
            self._transport.send(node, {"type": "rk_read_index", "id": request_id, "index": round_.index})

    # ---- the leader's side of raftkv's read messages --------------------------------

    def _on_read_message(self, node, message: dict, kind: str) -> None:
        if kind == "rk_ping":
            ok = message["term"] == self.term and self._leader_node == node
            self._transport.send(node, {"type": "rk_pong", "id": message["id"], "ok": ok})
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

    READ_MESSAGES = frozenset({"rk_ping", "rk_pong", "rk_read", "rk_read_index"})
