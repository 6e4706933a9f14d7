"""The CI smoke run: three raftkv members, kill -9 of the leader under load,
and every check must pass. Takes about ten seconds."""

from __future__ import annotations

import os

import pytest

from bench.harness import Scenario, run_scenario, unavailability
from bench.cli import passed, table

pytestmark = pytest.mark.timeout(180)


def test_unavailability_is_the_gap_around_the_fault():
    times = [0.1 * i for i in range(50)] + [7.0 + 0.1 * i for i in range(20)]
    u = unavailability(times, fault_at=4.95, end=9.0, window=10)
    assert u["last_success_before"] == pytest.approx(4.9)
    assert u["first_success_after"] == pytest.approx(7.0)
    assert u["unavailable_s"] == pytest.approx(2.1)


def test_unavailability_when_service_never_returns():
    u = unavailability([0.1, 0.2, 0.3], fault_at=1.0, end=5.0, window=10)
    assert u["first_success_after"] is None
    assert u["unavailable_s"] == pytest.approx(4.7)


def test_table_has_ratios():
    a = {"workload": "put", "fault": "none", "nodes": 3, "clients": 8, "ops_per_s": 100.0, "p99_ms": 10.0,
         "linearizable": True}
    b = dict(a, ops_per_s=200.0, p99_ms=5.0)
    md = table(a, b)
    assert "| ops_per_s | 100.0 | 200.0 | 0.50 |" in md
    assert "| p99_ms | 10.0 | 5.0 | 2.00 |" in md


def test_smoke_raftkv_kill_leader(tmp_path):
    s = Scenario(system="raftkv", nodes=3, workload="mix", clients=8, keys=8, duration=6.0,
                 fault="kill-leader", fault_at=1.5, fault_delay=2.0, watchers=1)
    r = run_scenario(s, quiet=True, keep_dir=str(tmp_path))
    assert r["ops"] > 50, r
    assert r["linearizable"] is True, r["linearizability"]
    assert r["lost_acked_writes"] == 0, r["lost_examples"]
    assert r["watch_violations"] == 0, r["watch_problems"]
    assert r["converged"], r["convergence"]
    assert passed(r)
    (fault,) = r["faults"]
    assert fault["fault"] == "kill-leader" and fault["member"] == fault["leader_before"]
    assert fault["first_success_after"] is not None
    assert 0 < r["unavailable_s"] < 15


@pytest.mark.skipif(not os.path.exists("/usr/bin/etcd"), reason="etcd-server not installed")
def test_smoke_etcd_pause_leader(tmp_path):
    s = Scenario(system="etcd", nodes=3, workload="cas", clients=8, keys=4, duration=5.0,
                 fault="pause-leader", fault_at=1.0, fault_delay=2.0, watchers=1)
    r = run_scenario(s, quiet=True, keep_dir=str(tmp_path))
    assert passed(r), {k: r[k] for k in ("linearizability", "lost_examples", "watch_problems", "convergence")}


def test_matrix_summary_has_a_row_per_scenario_and_flags_failures():
    from bench.cli import summary

    ok = {"workload": "put", "fault": "kill-leader", "ops_per_s": 100.0, "p99_ms": 9.0, "unavailable_s": 1.25,
          "faults": [{"at": 10.0}], "linearizable": True, "lost_acked_writes": 0, "watch_violations": 0, "converged": True}
    lost = dict(ok, ops_per_s=200.0, unavailable_s=2.5, lost_acked_writes=3)
    md = summary([{"raftkv": ok, "etcd": lost}])
    row = md.splitlines()[2]
    assert row == "| put / kill-leader | 100.0 | 200.0 | 0.50 | 9.0 | 9.0 | 1.25 | 2.50 | pass | FAIL |"


def test_matrix_refuses_an_unknown_scenario():
    from click.testing import CliRunner

    from bench.cli import matrix

    result = CliRunner().invoke(matrix, ["--scenarios", "put/no-such-fault", "--out", "unused"])
    assert result.exit_code == 2 and "no-such-fault" in result.output
