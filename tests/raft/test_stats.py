"""RaftStats: what a member counts for etcd's metrics."""

from __future__ import annotations

import threading

import pytest

import raftkv
from raftkv.raft.stats import FSYNC_BUCKETS, DurationHistogram, RaftStats


def test_histogram_counts_are_cumulative_with_etcds_buckets():
    h = DurationHistogram()
    for seconds in (0.0005, 0.001, 0.0015, 3.0, 100.0):
        h.observe(seconds)
    snap = h.snapshot()
    assert snap.buckets == FSYNC_BUCKETS and snap.buckets[0] == 0.001 and snap.buckets[-1] == pytest.approx(8.192)
    assert snap.counts[0] == 2      # 0.5 ms and exactly 1 ms
    assert snap.counts[1] == 3      # 1.5 ms
    assert snap.counts[-2] == 4     # 3 s, at or below 8.192 s
    assert snap.counts[-1] == 5     # +Inf
    assert snap.total == pytest.approx(103.003)


def test_leader_changes_count_new_leaders_not_losing_one():
    stats = RaftStats()
    for leader in (None, "a", "a", None, "a", "b", None, "a"):
        stats.saw_leader(leader)
    assert stats.snapshot().leader_changes == 3  # a, b, a


def test_proposals_pending_and_failed_from_many_threads():
    stats = RaftStats()

    def work(failed: bool) -> None:
        for _ in range(1000):
            stats.proposal_started()
            stats.proposal_ended(failed)

    threads = [threading.Thread(target=work, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    snap = stats.snapshot()
    assert (snap.proposals_pending, snap.proposals_failed) == (0, 2000)


def test_a_durable_store_counts_its_work(tmp_path):
    with raftkv.open(str(tmp_path / "store")) as kv:
        before = kv.raft_stats()
        for i in range(5):
            kv.put(f"k{i}", "v")
        after = kv.raft_stats()
    assert after.leader_changes == 1  # it elected itself once
    assert after.proposals_pending == 0 and after.proposals_failed == 0
    assert after.fsync.counts[-1] >= before.fsync.counts[-1] + 5  # every acknowledged put was fsynced
    assert after.fsync.total > before.fsync.total
