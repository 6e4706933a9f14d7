"""``python -m bench abuse``: its figures from synthetic calls, its table, and
one brief run of every phase on a real raftkv member in which the probe is
answered in every phase and every abuser is in place and cleaned up.
The run takes about 30 s."""

from __future__ import annotations

import pytest

from bench.abuse import (
    PHASES,
    AbuseConfig,
    _Call,
    passed,
    probe_stats,
    run_abuse,
    table,
)
from bench.abusers import AbuseParams


def test_probe_stats_counts_answers_errors_and_the_longest_silence():
    calls = [_Call("put", 0.0, 0.01), _Call("get", 0.01, 0.03), _Call("put", 0.03, None), _Call("get", 2.0, 2.5)]
    s = probe_stats(calls, began=0.0, end=3.0, first_error="DEADLINE_EXCEEDED: x")
    assert (s.ops, s.errors, s.ops_per_s) == (3, 1, 1.0)
    assert s.max_ms == pytest.approx(500.0)
    assert s.longest_gap_s == pytest.approx(2.47)   # from 0.03 to 2.5
    assert s.first_error == "DEADLINE_EXCEEDED: x"
    silent = probe_stats([_Call("put", 0.0, None)], began=0.0, end=2.0)
    assert silent.ops == 0 and silent.p99_ms is None and silent.longest_gap_s == pytest.approx(2.0)


def _result(system: str, p99: float, ops: int = 100) -> dict:
    phase = {"phase": "baseline", "probe": {"p99_ms": p99, "ops_per_s": 50.0, "ops": ops, "errors": 1},
             "rss_peak_mb": 80.0, "rss_end_mb": 70.0, "member_running": True, "member_cpu_s": 3.5,
             "threads_peak": 12, "abuser": None}
    return {"system": system, "config": {"phases": ["baseline"]}, "phases": [phase], "member_running": True,
            "rss_after_release_mb": 60.0, "rss_loaded_mb": 50.0}


def test_table_puts_raftkv_next_to_etcd_with_ratios():
    md = table(_result("raftkv", 20.0), _result("etcd", 10.0))
    assert "| baseline | 20.0 | 10.0 | 2.00 | 50.0 | 50.0 | 1.00 | 80.0 | 80.0 | 1.00 | 70.0 | 70.0 | 1.00 | 1 / 1 |" in md
    assert "raftkv 60.0, etcd 60.0 (ratio 1.00)" in md
    assert "| baseline | 3.5 | 3.5 |  |  | 12 | 12 |  |  |" in md   # the work table: no abuser in the baseline


def test_a_phase_without_answers_fails_the_run():
    assert passed(_result("raftkv", 20.0))
    assert not passed(_result("raftkv", 20.0, ops=0))


@pytest.mark.timeout(150)
def test_every_phase_briefly_on_raftkv(tmp_path):
    cfg = AbuseConfig(system="raftkv", phase_seconds=2.0, probe_clients=4, range_keys=2000, warmup=0.5, settle=1.0,
                      abuse=AbuseParams(endpoint="", slow_watchers=10, flood_streams=32, snapshot_readers=2,
                                        range_clients=1, ready_timeout=20.0))
    r = run_abuse(cfg, keep_dir=str(tmp_path))
    assert [p["phase"] for p in r["phases"]] == list(PHASES)
    for p in r["phases"]:
        assert p["member_running"], p
        assert p["probe"]["ops"] > 0, f"the probe got no answer under {p['phase']}: {p['probe']}"
        assert p["rss_peak_mb"] > 0 and p["rss_end_mb"] > 0 and p["samples"] > 0, p
        if p["phase"] == "baseline":
            assert p["abuser"] is None
            continue
        a = p["abuser"]
        assert a["kind"] == p["phase"] and a["exitcode"] == 0, a
        assert a["ready"] and a["cleaned_up"], a
        assert p["member_cpu_s"] is not None and a["cpu_s"] is not None, p
    abusers = {p["phase"]: p["abuser"] for p in r["phases"] if p["abuser"]}
    assert abusers["slow-watchers"]["streams"] == 10
    assert abusers["stream-flood"]["streams"] == 32
    assert abusers["snapshot-readers"]["answered"] == 2
    assert abusers["progress-flood"]["requests"] > 0
    assert abusers["big-ranges"]["extra"]["range_keys"] == 2000
    assert r["rss_after_release_mb"] > 0
    assert r["member_running"] and passed(r)
