"""The random nemesis (bench/nemesis.py) and the soak's verdict (bench/soak.py).

The schedule is a pure function of the seed: tested without a cluster. One
short run (~20 s of load) on a 3-member raftkv cluster must pass every check
with its faults really injected. The soak's growth verdict is tested on
synthetic samples."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys

import pytest

from bench import nemesis, soak
from bench.cli import fault_table, passed
from bench.harness import Scenario, run_scenario

pytestmark = pytest.mark.timeout(240)


# ---- the schedule --------------------------------------------------------------------

@pytest.mark.parametrize("seed", [1, 2, 3, 17, 12345])
def test_the_same_seed_gives_the_same_schedule(seed):
    a = nemesis.schedule(seed, 60.0, 3)
    b = nemesis.schedule(seed, 60.0, 3)
    assert [p.as_dict() for p in a] == [p.as_dict() for p in b]
    assert len(a) >= 4


def test_different_seeds_give_different_schedules():
    plans = {tuple((p.kind, p.target, p.index, p.at) for p in nemesis.schedule(seed, 60.0, 3)) for seed in range(20)}
    assert len(plans) == 20


@pytest.mark.parametrize("seed", range(1, 11))
def test_a_schedule_keeps_to_one_fault_at_a_time_within_the_run(seed):
    duration, nodes = 60.0, 3
    plan = nemesis.schedule(seed, duration, nodes)
    assert plan[0].at == nemesis.warmup(duration)
    for p, q in itertools.pairwise(plan):
        # the next fault is planned after this one's window, its recovery and a gap
        assert q.at >= p.at + p.window + nemesis.RECOVERY_ESTIMATE[p.kind] + nemesis.GAP[0] - 1e-6
    for p in plan:
        assert p.kind in nemesis.KINDS
        assert p.at + p.window <= duration - nemesis.tail(duration)
        if p.target == "member":
            assert 0 <= p.index < nodes
        elif p.target == "follower":
            assert 0 <= p.index < nodes - 1
        else:
            assert p.index is None and p.target in ("leader", "all")
    assert [p.n for p in plan] == list(range(len(plan)))


def test_every_kind_turns_up():
    # over a few seeds of the compare runs' length ...
    seen = {p.kind for seed in (1, 2, 3) for p in nemesis.schedule(seed, 60.0, 3)}
    assert seen == set(nemesis.KINDS)
    # ... and in every run long enough to empty the bag once (kinds come from a shuffled bag)
    for seed in range(1, 31):
        plan = nemesis.schedule(seed, 150.0, 3)
        assert len(plan) >= len(nemesis.BAG)
        assert {p.kind for p in plan[:len(nemesis.BAG)]} == set(nemesis.KINDS), seed
    # each kind's own parameters
    for p in (p for seed in range(1, 31) for p in nemesis.schedule(seed, 150.0, 3)):
        if p.kind == "clock-jump":
            assert p.params["offset_s"] in nemesis.CLOCK_OFFSETS
        if p.kind == "slow-disk":
            assert p.params["fsync_delay_ms"] in (10.0, 50.0, 200.0)
        if p.kind == "member-replace":
            assert p.target == "follower"
        if p.kind == "restart-all":
            assert p.target == "all" and p.window == 1.0


def test_the_nemesis_needs_a_majority_to_survive():
    with pytest.raises(ValueError):
        nemesis.schedule(1, 60.0, 1)
    with pytest.raises(ValueError):
        Scenario(fault="kill-leader", nemesis="random")
    s = Scenario(system="etcd", nemesis="random", seed=4)
    assert s.member_args == ["--snapshot-count", str(nemesis_snapshot_count())]
    assert s.name == "etcd-3n-mix-random-nemesis-s4-c64"


def nemesis_snapshot_count() -> int:
    from bench.scenario import NEMESIS_SNAPSHOT_COUNT

    return NEMESIS_SNAPSHOT_COUNT


def test_faults_injected_rows_and_the_fault_table():
    events = [
        {"fault": "kill", "n": 0, "member": "m1", "at": 3.01, "recovered_at": 5.2, "planned_at": 3.0,
         "target": "leader", "unavailable_s": 1.2, "time_to_leader_s": 1.1, "term_before": 2, "term_after": 3},
        {"fault": "clock-jump", "n": 1, "member": "m0", "planned_at": 9.0, "target": "member 0",
         "offset_s": 3600, "applicable": False, "not_applicable": "etcd reads the vDSO",
         "skipped_at": 9.0, "skipped_until": 12.0},
    ]
    rows = nemesis.injected(events)
    assert rows[0] == {"kind": "kill", "member": "m1", "at_s": 3.01, "healed_at_s": 5.2, "planned_at_s": 3.0,
                       "details": {"n": 0, "target": "leader", "unavailable_s": 1.2, "time_to_leader_s": 1.1,
                                   "term_before": 2, "term_after": 3}}
    assert rows[1]["kind"] == "clock-jump" and rows[1]["details"]["applicable"] is False
    assert rows[1]["at_s"] == 9.0 and rows[1]["healed_at_s"] == 12.0
    plan = [nemesis.Planned(0, "kill", 3.0, 2.0, "leader").as_dict(),
            nemesis.Planned(1, "clock-jump", 9.0, 3.0, "member", 0, {"offset_s": 3600}).as_dict(),
            nemesis.Planned(2, "pause", 15.0, 1.0, "member", 2).as_dict()]
    md = fault_table({"etcd": {"faults_injected": rows, "nemesis": {"schedule": plan}}})
    assert "| 0 | kill | leader | 3.0 | m1 | 3.0 | 5.2 | 1.20 | 1.10 | 1 |" in md
    assert "m0: not applicable" in md
    assert "| 2 | pause | member 2 | 15.0 | not injected |" in md
    assert nemesis.summary({"faults_injected": rows}) == {
        "kill": {"count": 1, "max_unavailable_s": 1.2, "not_applicable": 0},
        "clock-jump": {"count": 1, "max_unavailable_s": None, "not_applicable": 1}}


# ---- one short run ------------------------------------------------------------------------

def test_random_nemesis_on_raftkv_passes_every_check(tmp_path):
    """Seed 17, 20 s: a follower cut off both ways, kill -9 of the leader,
    and (if the run's pace leaves room) a follower replaced."""
    s = Scenario(system="raftkv", nodes=3, workload="mix", clients=16, keys=8, duration=20.0, nemesis="random",
                 seed=17, watchers=1)
    r = run_scenario(s, quiet=True, keep_dir=str(tmp_path))
    assert passed(r), {k: r.get(k) for k in ("linearizability", "lost_examples", "watch_problems", "convergence",
                                            "faults_injected", "nemesis")}
    assert r["nemesis"]["schedule"] == [p.as_dict() for p in nemesis.schedule(17, 20.0, 3)]
    assert r["nemesis"]["errors"] == []
    rows = r["faults_injected"]
    assert [f["kind"] for f in rows][:2] == ["partition", "kill"], rows
    for f in rows:
        assert f["member"] and f["at_s"] is not None and f["healed_at_s"] >= f["at_s"], f
        assert "error" not in f["details"] and "healed_by_safety_net" not in f["details"], f
        assert f["details"]["healthy_at"] is not None
    for f, g in itertools.pairwise(rows):   # one at a time
        assert g["at_s"] >= f["details"]["healthy_at"]
    kill = rows[1]
    assert kill["member"] == kill["details"]["leader_before"]
    assert kill["details"]["new_leader"] is not None
    assert r["ops"] > 500 and r["restart_failures"] == 0


# ---- the soak's verdict -----------------------------------------------------------------------

def _samples(values_per_member: list[list[float]], step: float = 5.0, metric: str = "rss_kb") -> list[dict]:
    out = []
    for k in range(len(values_per_member[0])):
        members = {f"m{i}": {"pid": 100 + i, metric: v[k], "fds": 20} for i, v in enumerate(values_per_member)
                   if v[k] is not None}
        out.append({"t": k * step, "members": members})
    return out


def test_a_flat_noisy_series_does_not_grow():
    import random

    rng = random.Random(1)
    series = [[100_000 * (1 + 0.05 * rng.random()) for _ in range(90)] for _ in range(3)]
    v = soak.growth_verdict(soak.totals(_samples(series), "rss_kb", 3))
    assert v["verdict"] == "no growth" and abs(v["growth"]) < 0.05


def test_warm_up_does_not_count_but_steady_growth_does():
    warming = [[50_000 + 1_000 * min(k, 30) for k in range(90)] for _ in range(3)]   # grows, then flat
    assert soak.growth_verdict(soak.totals(_samples(warming), "rss_kb", 3))["verdict"] == "no growth"
    leaking = [[50_000 + 1_000 * k for k in range(90)] for _ in range(3)]           # never stops
    v = soak.growth_verdict(soak.totals(_samples(leaking), "rss_kb", 3))
    assert v["verdict"] == "growth" and v["growth"] > 0.10


def test_restarts_and_missing_members_do_not_decide_it():
    series = [[100_000.0] * 90 for _ in range(3)]
    for k in range(70, 74):           # m1 killed: not sampled, then back small and catching up
        series[1][k] = None
    for k, v in zip(range(74, 78), (30_000, 60_000, 90_000, 100_000)):
        series[1][k] = v
    points = soak.totals(_samples(series), "rss_kb", 3)
    assert len(points) == 86          # samples without every member are left out
    assert soak.growth_verdict(points)["verdict"] == "no growth"


def test_too_few_samples_is_undecided_and_fds_have_slack():
    assert soak.growth_verdict([])["verdict"] == "undecided"
    assert soak.growth_verdict([(0, 1.0), (1, 1.0), (2, 1.0)])["verdict"] == "undecided"
    fds = [(t, 60.0 if t < 60 else 70.0) for t in range(90)]    # +10 fds over 3 members: within 10 % + 15
    assert soak.growth_verdict(fds, slack=15)["verdict"] == "no growth"
    assert soak.growth_verdict(fds)["verdict"] == "growth"


def test_verdicts_and_lifetimes_of_a_soak():
    series = [[100_000.0] * 30 for _ in range(3)]
    samples = _samples(series)
    samples[20]["members"]["m0"]["pid"] = 999     # m0 restarted
    v = soak.verdicts(samples, 3)
    assert v["rss"]["verdict"] == "no growth" and v["fds"]["verdict"] == "no growth"
    assert set(v["per_member_rss"]) == {"m0", "m1", "m2"}
    procs = soak.lifetimes(samples)
    assert [(p["member"], p["pid"]) for p in procs][:3] == [("m0", 100), ("m1", 101), ("m2", 102)]
    assert ("m0", 999) in [(p["member"], p["pid"]) for p in procs]
    assert "| 0 |" in soak.rss_table(samples)


def test_proc_sample_reads_rss_and_fds_of_a_process():
    child = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)"],
                             stdout=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"up\n"   # running Python, not just forked
        got = soak.proc_sample(child.pid)
        assert got["pid"] == child.pid and got["rss_kb"] > 1000 and got["fds"] >= 3 and got["threads"] >= 1
    finally:
        child.kill()
        child.wait()
        child.stdout.close()
    assert soak.proc_sample(child.pid) is None
    assert soak.proc_sample(os.getpid())["rss_kb"] > 0
