"""bench.large at a small size: every phase runs, on real members, and says what it measured."""

from __future__ import annotations

import pytest

from bench.large import RANGE_KEYS, measure, table


@pytest.mark.timeout(240)
def test_every_phase_of_a_small_store_on_three_raftkv_members():
    result = measure("raftkv", nodes=3, keys=3000, value_size=64)
    assert set(result.phases) == {"load", "snapshot", "range", "compaction", "catch_up", "restart"}
    assert result.load_keys_per_s > 0
    assert result.snapshot_bytes > 3000 * 64  # the values alone
    assert len(result.phases["range"].detail["each_ms"]) == 3
    assert result.phases["range"].detail["keys"] == min(3000, RANGE_KEYS)
    assert result.phases["catch_up"].detail["caught_up_s"] is not None
    assert result.phases["restart"].seconds > 0
    for name in ("load", "snapshot", "range", "compaction", "catch_up"):
        phase = result.phases[name]
        assert phase.worst_put_ms is not None and phase.worst_put_ms >= phase.put_p99_ms, name
    rows = table([result]).splitlines()
    assert rows[0] == "| figure | raftkv |"
    assert any(row.startswith("| follower catch-up from empty, s |") for row in rows)


@pytest.mark.timeout(60)
def test_a_phase_shorter_than_the_probe_interval_still_has_a_put():
    from bench.harness import started_cluster
    from bench.large import Prober

    with started_cluster("raftkv", 1, "large-prober") as cluster, Prober(cluster.members[0].endpoint) as prober:
        for _ in range(5):
            start = prober.begin()
            phase = prober.phase(start, start)
            assert phase.worst_put_ms is not None and phase.failed_puts == 0
