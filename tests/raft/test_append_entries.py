"""The AppendEntries receiver: Raft truncates a follower's log only on a term
conflict. pysyncobj 0.3.17 truncated whenever a message's prevLogIdx was below
the follower's last index, even when every term agreed (dropping, and later
re-appending, entries it had already applied)."""

from __future__ import annotations

import time

import pytest

from raftkv.client import ops
from raftkv.cluster.local import free_ports
from raftkv.mvcc.requests import PutRequest
from raftkv.raft.member import COMMAND_TYPE, RaftMember
from raftkv.wire import encode_request

pytestmark = pytest.mark.timeout(60)


def entry(index: int, term: int, key: str) -> tuple[bytes, int, int]:
    return bytes([COMMAND_TYPE]) + encode_request(PutRequest(key.encode(), b"v")), index, term


@pytest.fixture
def follower(tmp_path):
    me, leader, other = (f"127.0.0.1:{p}" for p in free_ports(3))
    # the peers never run: the test plays the leader by handing messages in
    member = RaftMember(me, [me, leader, other], str(tmp_path / "m"))
    node = next(n for n in member._voters() if n.id == leader)
    yield member, node
    member.close()


def deliver(member, node, prev_index, prev_term, entries, commit):
    member._submit(lambda: member._SyncObj__onMessageReceived(node, {
        "type": "append_entries", "term": 1, "commit_index": commit,
        "prevLogIdx": prev_index, "prevLogTerm": prev_term, "entries": entries,
    }))


def log_of(member):
    journal = member._journal
    return [(journal[i][1], journal[i][2]) for i in range(len(journal))]


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.01)


def test_a_repeated_append_does_not_truncate_applied_entries(follower):
    member, leader = follower
    entries = [entry(2, 1, "a"), entry(3, 1, "b"), entry(4, 1, "c")]
    deliver(member, leader, 1, 0, entries, commit=4)
    wait_for(lambda: member.applied_index == 4)
    assert member.store.revision == 4

    # the leader resends entry 3 (e.g. after a stale next_node_idx reply)
    deliver(member, leader, 2, 1, [entry(3, 1, "b")], commit=4)
    deliver(member, leader, 4, 1, [], commit=4)  # a heartbeat: processed after the resend
    wait_for(lambda: member._leader_contact > 0 and len(member._journal) == 4)
    time.sleep(0.2)
    assert log_of(member) == [(1, 0), (2, 1), (3, 1), (4, 1)]
    assert member.store.revision == 4  # nothing applied twice


def test_a_conflicting_uncommitted_entry_is_replaced(follower):
    member, leader = follower
    deliver(member, leader, 1, 0, [entry(2, 1, "a"), entry(3, 1, "stale")], commit=2)
    wait_for(lambda: member.applied_index == 2)
    # a new leader's entry 3 has another term: the uncommitted one goes
    member._submit(lambda: member._SyncObj__onMessageReceived(leader, {
        "type": "append_entries", "term": 2, "commit_index": 3,
        "prevLogIdx": 2, "prevLogTerm": 1, "entries": [entry(3, 2, "fresh")],
    }))
    wait_for(lambda: member.applied_index == 3)
    assert log_of(member) == [(1, 0), (2, 1), (3, 2)]
    assert member.store.range(ops.get("fresh")).count == 1
    assert member.store.range(ops.get("stale")).count == 0


def test_a_snapshot_older_than_what_is_applied_is_not_installed(follower, tmp_path):
    """A leader may send its snapshot again on an answer the follower gave
    before the last one arrived. Installing it would take the store back and
    apply (and announce to watchers) the revisions after it a second time."""
    from raftkv.mvcc.store import KVStore
    from raftkv.raft.membership import MembershipTable
    from raftkv.raft.snapshot import SnapshotMeta, state_records, write_snapshot

    member, leader = follower
    entries = [entry(i, 1, f"k{i}") for i in range(2, 7)]
    deliver(member, leader, 1, 0, entries, commit=6)
    wait_for(lambda: member.applied_index == 6)
    watch = member.store.watchers.watch(b"k", b"l", start_revision=0)

    older = KVStore()
    for i in range(2, 5):
        older.apply(PutRequest(f"k{i}".encode(), b"v"))
    path = str(tmp_path / "older")
    write_snapshot(path, SnapshotMeta(4, 1, [entries[1], entries[2]], [], member.identity.cluster_id),
                   state_records(older, MembershipTable()))
    data = open(path, "rb").read()
    member._submit(lambda: member._SyncObj__onMessageReceived(leader, {
        "type": "append_entries", "term": 1, "commit_index": 6, "serialized": [data, True, True]}))
    deliver(member, leader, 6, 1, [entry(7, 1, "k7")], commit=7)
    wait_for(lambda: member.applied_index == 7)
    assert member.store.revision == 7
    with member.lock:
        revisions = [r.revision for r in member.store.watchers.poll(watch)]
    assert revisions == [7]


def test_a_proposal_whose_entry_a_snapshot_covers_ends_with_an_unknown_outcome(follower, tmp_path):
    """A follower forwards a proposal and hears its index; if a snapshot
    covering that index arrives before the entry itself, the entry is never
    applied one by one, and the proposal must not wait forever."""
    from raftkv.errors import RequestTimedOut
    from raftkv.mvcc.store import KVStore
    from raftkv.raft.membership import MembershipTable
    from raftkv.raft.snapshot import SnapshotMeta, state_records, write_snapshot

    member, leader = follower
    deliver(member, leader, 1, 0, [], commit=1)
    outcome: list = []
    member.propose_async(PutRequest(b"p", b"v"), lambda result, error: outcome.append((result, error)))
    wait_for(lambda: member._SyncObj__commandsWaitingReply)  # forwarded to the (played) leader
    (request_id,) = member._SyncObj__commandsWaitingReply
    member._submit(lambda: member._SyncObj__onMessageReceived(leader, {
        "type": "apply_command_response", "request_id": request_id, "log_idx": 3, "log_term": 1}))

    covered = KVStore()
    for key in (b"k2", b"p", b"k4"):
        covered.apply(PutRequest(key, b"v"))
    path = str(tmp_path / "covering")
    tail = [entry(3, 1, "p"), entry(4, 1, "k4")]
    write_snapshot(path, SnapshotMeta(4, 1, tail, [member.address, *(n.id for n in member._voters())],
                                      member.identity.cluster_id),
                   state_records(covered, MembershipTable()))
    data = open(path, "rb").read()
    member._submit(lambda: member._SyncObj__onMessageReceived(leader, {
        "type": "append_entries", "term": 1, "commit_index": 4, "serialized": [data, True, True]}))
    wait_for(lambda: member.applied_index == 4)
    wait_for(lambda: outcome)
    assert outcome[0][0] is None and isinstance(outcome[0][1], RequestTimedOut)
