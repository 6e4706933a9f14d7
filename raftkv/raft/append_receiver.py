"""The follower's side of replication: every peer message passes here first.

Malformed messages are dropped; raftkv's own messages go to their handlers;
AppendEntries is applied by Raft's rules (an entry is truncated only on a term
conflict, never because a message repeats entries the follower already has,
and never below the commit index); snapshot pieces go to the installer.
"""

from __future__ import annotations

import logging
import os

from raftkv.raft.engine import Engine
from raftkv.raft.messages import message_problem

log = logging.getLogger(__name__)


class AppendReceiver(Engine):
    def _init_receiver(self) -> None:
        self._leader_contact = self._clock()
        self._snapshot_sent_at: dict[object, float] = {}  # when a follower was last sent the whole snapshot

    def _on_peer_message(self, node, message) -> None:
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
        if kind == "append_entries" and message["term"] >= self.term:
            if self.loading_snapshot:
                # it hears its leader (no election), and answers once the
                # snapshot it was sent is in place
                self._follow(node, message)
                return
            if "prevLogIdx" in message:
                self._on_append_entries(node, message)
                return
            if "serialized" in message:
                self._follow(node, message)
                self._on_snapshot_chunk(node, message["serialized"])
                return
        self._handle_as_pysyncobj(node, message)

    def snapshot_sent(self, node) -> None:
        """The last piece of the snapshot file went to ``node``."""
        self._snapshot_sent_at[node] = self._clock()

    def _checked_next_index(self, node, message: dict) -> dict | None:
        """A follower's answer about where its log ends, as the leader may act on it."""
        if not self._is_follower_tracked(node):
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
        self._handle_as_pysyncobj(node, {
            "type": "append_entries",
            "term": message["term"],
            "commit_index": self.commit_index,
        })
        self._leader_contact = self._clock()

    def _on_append_entries(self, node, message) -> None:
        # pysyncobj's bookkeeping first, then the log operation by Raft's rules
        if self._conflicts_with_committed(message.get("entries", ())):
            # Raft guarantees a leader never does this: whoever sent it is not
            # a leader to follow (an impostor, without a peer secret)
            log.critical("refused an append conflicting with committed entries peer=%s commit=%d",
                         getattr(node, "id", node), self.commit_index)
            return
        self._follow(node, message)
        prev_idx, prev_term = message["prevLogIdx"], message["prevLogTerm"]
        prev = self._entries(prev_idx, 1)
        if not prev or prev[0][2] != prev_term:
            # Ask for everything after our commit index: committed entries are
            # in every later leader's log, so that prefix matches, and one round
            # trip repairs any divergent suffix. (pysyncobj's answers, our last
            # index + 1 or prev_idx, walk back one entry per reply, and the
            # leader's pipelined appends keep resetting it to our last index + 1:
            # a member that led alone with uncommitted entries never caught up.)
            matching = min(self.commit_index, self._last_log_index())
            self._send_next_index(node, matching + 1, success=False, reset=True)
            return

        new_entries = list(message.get("entries", []))
        skip = 0
        for entry in new_entries:
            mine = self._entries(entry[1], 1)
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
            change = self._parse_configuration_change(entry[0])
            if change is not None:
                self._change_configuration(change)

        last_new = new_entries[-1][1] if new_entries else prev_idx
        leader_commit = message["commit_index"]
        self._set_leader_commit_index(leader_commit)
        if leader_commit > self.commit_index:
            self._set_commit_index(max(self.commit_index, min(leader_commit, last_new)))
            self._journal.setRaftCommitIndex(self.commit_index)
        self._send_next_index(node, last_new + 1, success=True)

    def _conflicts_with_committed(self, entries) -> bool:
        commit = self.commit_index
        for entry in entries:
            if entry[1] > commit:
                return False
            mine = self._entries(entry[1], 1)
            if mine and mine[0][2] != entry[2]:
                return True
        return False

    def _truncate_conflict(self, index: int) -> None:
        for entry in reversed(self._entries(index)):
            change = self._parse_configuration_change(entry[0])
            if change is not None:
                self._change_configuration(change, reverse=True)
        log.info("truncating conflicting log suffix from_index=%d", index)
        self._delete_entries_from(index)
