"""Membership on a member: Raft configuration changes (one voter added or
removed at a time, through the log), the membership table of names and URLs,
learners' progress, and leadership transfer."""

from __future__ import annotations

import logging
import threading
import time

from pysyncobj.config import FAIL_REASON

from raftkv.errors import RequestTimedOut
from raftkv.raft import codec, failpoints
from raftkv.raft.engine import MEMBER_COMMAND_TYPE, MEMBERSHIP_TAG, Engine, error_for_fail_reason
from raftkv.raft.membership import decode_change, encode_change

log = logging.getLogger(__name__)


class Reconfiguration(Engine):
    MEMBERSHIP_MESSAGES = frozenset({"rk_removed", "rk_progress", "rk_transfer"})

    def _init_membership(self) -> None:
        self._drop_later: list[tuple[float, object]] = []  # removed voters' connections, closed a little later
        self._learner_progress: dict[str, tuple[int, float]] = {}
        self._progress_sent = 0.0

    # ---- the membership table ------------------------------------------------------

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

    def _members_answer(self) -> str:
        """What a starting member asks on the peer port: is it a learner?"""
        with self.lock:
            return self.membership.to_json()

    # ---- learners ----------------------------------------------------------------------

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
            self._transport.send(node, {"type": "rk_progress", "address": self.address,
                                        "applied": self.applied_index})

    # ---- Raft configuration changes -------------------------------------------------

    def _parse_configuration_change(self, command):
        if command[:1] != MEMBERSHIP_TAG:
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

    def _change_configuration(self, request, reverse: bool = False):
        failpoints.hit("membership-change")
        removing = request[0] == "rem" and not reverse
        if not removing and request[1] == self.address and self.learner:
            # a learner promoted: it becomes a voter by restarting as one
            self.promoted.set()
            return False
        if not removing or request[1] == self.address:
            if not removing:  # an add, or a removal rolled back
                self._drop_later = [(t, n) for t, n in self._drop_later if n.id != request[1]]
            return self._change_configuration_as_pysyncobj(request, reverse)
        # pysyncobj would close the removed member's connection at once, so it
        # would never hear of its removal: stop counting it now, tell it, and
        # close the connection a little later.
        node = next((n for n in self._voters() if n.id == request[1]), None)
        if node is None:
            return False
        self._transport.send(node, {"type": "rk_removed", "term": self.term})
        self._forget_follower(node)
        self._drop_later.append((self._clock() + 1.0, node))
        return True

    def _drop_removed(self, now: float) -> None:
        due = [n for t, n in self._drop_later if t <= now]
        if due:
            self._drop_later = [(t, n) for t, n in self._drop_later if t > now]
            for node in due:
                self._transport.dropNode(node)

    def _notice_own_removal(self, change: list) -> None:
        if change[0] == "rem" and change[1] == self.address:
            log.warning("this member was removed from the cluster address=%s", self.address)
            self.removed.set()

    def connected_voters(self) -> set[str]:
        """The other voting members this one has a live peer connection with."""
        transport = self._transport
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
            self._applyCommand(codec.encode(change), finish, MEMBERSHIP_TAG[0])
            if not done.wait(max(0.0, deadline - time.monotonic())):
                raise RequestTimedOut()
            if outcome[0] == FAIL_REASON.SUCCESS:
                return
            if outcome[0] != FAIL_REASON.REQUEST_DENIED or time.monotonic() > deadline:
                raise error_for_fail_reason(outcome[0])
            time.sleep(0.1)

    # ---- leadership --------------------------------------------------------------------

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
            leader = self._leader_node
            if leader is not None:
                self._submit(lambda: self._transport.send(leader, {"type": "rk_transfer"}))
            if time.monotonic() > deadline:
                raise RequestTimedOut()
            time.sleep(0.2)

    def _on_membership_message(self, node, message: dict, kind: str) -> None:
        if kind == "rk_removed":
            # only the leader of this very term may say so (without a peer
            # secret, anyone can claim to be a member; not to be the leader)
            if message["term"] == self.term and node == self._leader_node and not self.is_leader:
                log.warning("removed from the cluster by a peer peer=%s", getattr(node, "id", node))
                self.removed.set()
        elif kind == "rk_progress":
            self._learner_progress[str(message["address"])] = (int(message["applied"]), self._clock())
        elif kind == "rk_transfer":
            if self.is_leader:
                self.transferLeadership(None, None)
