"""``python -m bench run``, ``compare`` and ``matrix``: scenarios with faults and checks.

    python -m bench run --system raftkv --nodes 3 --workload put --clients 64 \\
        --duration 30 --fault kill-leader --out results/
    python -m bench compare --workload mix --fault kill-leader --out results/
    python -m bench matrix --out results/          # the full matrix, both systems
    python -m bench compare --workload mix --nemesis random --seed 3 --duration 60
    python -m bench soak --minutes 30              # bench/soak.py

Each run writes results/<scenario>.json (and .png when matplotlib is
installed); see bench/harness.py for what is measured and checked.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import click

from bench.harness import FAULTS, WORKLOADS, Scenario, run_scenario
from bench.scenario import NEMESES


def _options(f):
    for option in reversed([
        click.option("--nodes", default=3, show_default=True),
        click.option("--workload", type=click.Choice(WORKLOADS), default="mix", show_default=True),
        click.option("--clients", default=64, show_default=True, help="Threads, one request in flight each."),
        click.option("--duration", default=30.0, show_default=True, help="Seconds of load."),
        click.option("--fault", type=click.Choice(FAULTS), default="none", show_default=True),
        click.option("--keys", default=32, show_default=True, help="Keys the load spreads over."),
        click.option("--fault-at", type=float, default=None, help="Seconds into the run [a third of it]."),
        click.option("--fault-delay", default=3.0, show_default=True,
                     help="Seconds until the killed member restarts / the paused one resumes "
                          "(restart-all: at most 1 s; kill-main-only(-all): at most 0.5 s)."),
        click.option("--timeout", default=2.0, show_default=True, help="Per-request timeout, seconds."),
        click.option("--watchers", type=int, default=None,
                     help="Watchers of the prefix [200 for watch-fanout, else 2]."),
        click.option("--fsync-delay-ms", default=10.0, show_default=True,
                     help="The slow-disk fault: delay added to every fsync/fdatasync of every member."),
        click.option("--snapshot-count", type=int, default=None,
                     help="--snapshot-count of every member, raftkv and etcd alike "
                          "[500 for kill-main-only(-all), else each system's default]."),
        click.option("--fault-interval", default=5.0, show_default=True,
                     help="kill-main-only(-all): seconds from one kill to the next (rounds repeat until "
                          "4 s before the end)."),
        click.option("--nemesis", type=click.Choice(NEMESES), default="none", show_default=True,
                     help="random: faults of every kind composed over the run, drawn from --seed, one at a "
                          "time with recoveries between them (bench/nemesis.py), instead of --fault."),
        click.option("--seed", default=1, show_default=True,
                     help="The load's randomness, and the nemesis's schedule."),
        click.option("--out", default="results", show_default=True, help="Folder for JSON and PNG."),
        click.option("--quiet", is_flag=True, help="No progress on stderr."),
    ]):
        f = option(f)
    return f


def _scenario(system: str, kw: dict) -> Scenario:
    return Scenario(system=system, nodes=kw["nodes"], workload=kw["workload"], clients=kw["clients"],
                    duration=kw["duration"], fault=kw["fault"], keys=kw["keys"], fault_at=kw["fault_at"],
                    fault_delay=kw["fault_delay"], timeout=kw["timeout"],
                    watchers=kw["watchers"],
                    seed=kw["seed"], fsync_delay_ms=kw["fsync_delay_ms"],
                    snapshot_count=kw["snapshot_count"], fault_interval=kw["fault_interval"],
                    nemesis=kw["nemesis"])


def _save(result: dict, out: str, plot_results: list[dict] | None = None, name: str | None = None) -> None:
    from bench.plot import plot

    os.makedirs(out, exist_ok=True)
    name = name or result["scenario"]
    with open(os.path.join(out, f"{result['scenario']}.json"), "w") as f:
        json.dump(result, f, indent=1)
    png = plot(plot_results or [result], os.path.join(out, f"{name}.png"))
    if png:
        click.echo(f"plot: {png}", err=True)


SUMMARY = ["system", "nodes", "workload", "fault", "clients", "duration_s", "ops_per_s", "p50_ms", "p99_ms",
           "unavailable_s", "time_to_leader_s", "linearizable", "lost_acked_writes", "watch_violations",
           "converged", "restart_failures"]


def passed(result: dict) -> bool:
    return (result["linearizable"] is True and result["lost_acked_writes"] == 0
            and result["watch_violations"] == 0 and result["converged"]
            and result.get("workload_violations", 0) == 0 and result.get("restart_failures", 0) == 0)


@click.command("run")
@click.option("--system", type=click.Choice(["raftkv", "etcd"]), default="raftkv", show_default=True)
@_options
def run(system: str, **kw) -> None:
    """One scenario on one system; prints its summary as JSON."""
    result = run_scenario(_scenario(system, kw), quiet=kw["quiet"])
    _save(result, kw["out"])
    if "faults_injected" in result and not kw["quiet"]:
        click.echo(fault_table({system: result}), err=True)
    click.echo(json.dumps({k: result[k] for k in SUMMARY}))
    raise SystemExit(0 if passed(result) else 1)


ROWS = [("ops_per_s", "higher"), ("p50_ms", "lower"), ("p95_ms", "lower"), ("p99_ms", "lower"),
        ("unavailable_s", "lower"), ("time_to_leader_s", "lower"), ("watch_delay_p99_ms", "lower"),
        ("errors", "lower"), ("linearizable", None), ("lost_acked_writes", None),
        ("watch_violations", None), ("converged", None), ("restart_failures", None)]
# the figures of a workload beyond the common ones, after them in the table
WORKLOAD_ROWS = {
    "lease-churn": ["grant_p99_ms", "put_p99_ms", "revoke_p99_ms", "leases_revoked", "lease_violations"],
    "watch-fanout": ["watchers", "watch_events_per_s", "watch_delay_p50_ms", "watch_resumes"],
    "objects": ["write_p50_ms", "write_p99_ms", "list_p50_ms", "list_p99_ms", "informers",
                "informer_delay_p50_ms", "informer_delay_p99_ms", "informer_rewatches", "workload_violations"],
}


def table(a: dict, b: dict) -> str:
    """Markdown: each figure for raftkv (a) and etcd (b) and their ratio."""
    lines = [f"| {a['workload']} / {a['fault']} / {a['nodes']} members / {a['clients']} clients "
             f"| raftkv | etcd | raftkv/etcd |", "|---|---:|---:|---:|"]
    for key in [k for k, _ in ROWS] + WORKLOAD_ROWS.get(a["workload"], []):
        x, y = a.get(key), b.get(key)
        numbers = isinstance(x, (int, float)) and isinstance(y, (int, float)) and not isinstance(x, bool)
        if numbers and x >= 0 and y > 0:   # a delay can be negative: seen before the writer noted its ack
            ratio = f"{x / y:.2f}"
        else:
            ratio = ""
        lines.append(f"| {key} | {x} | {y} | {ratio} |")
    if "faults_injected" in a or "faults_injected" in b:
        x, y = (len([f for f in r.get("faults_injected", []) if f["details"].get("applicable") is not False])
                for r in (a, b))
        lines.append(f"| faults_injected | {x} | {y} |  |")
    return "\n".join(lines)


def _fault_cells(row: dict | None) -> list[str]:
    if row is None:
        return ["not injected", "", "", "", "", ""]
    d = row["details"]
    if d.get("applicable") is False:
        return [f"{row['member']}: not applicable", "", "", "", "", ""]
    terms = d["term_after"] - d["term_before"] if "term_after" in d and "term_before" in d else None
    cells = [str(row["member"]), _cell(row["at_s"]), _cell(row["healed_at_s"]), _cell(d.get("unavailable_s"), 2),
             _cell(d.get("time_to_leader_s"), 2), _cell(terms)]
    if d.get("error") or d.get("restart_failed") or d.get("not_recovered"):
        cells[0] += " (FAILED: " + ", ".join(k for k in ("error", "restart_failed", "not_recovered") if d.get(k)) + ")"
    return cells


def fault_table(results: dict[str, dict]) -> str:
    """Markdown: each planned fault of a nemesis run (its kind, target and
    parameters), and for each system whom it hit, when, when healed, the
    seconds without service around it, the time to a new leader (when there
    was an election) and how many terms passed until the cluster was whole."""
    systems = [name for name in ("raftkv", "etcd") if name in results]
    head = "| # | kind | target | planned at s |" + "".join(
        f" {name}: member | at s | healed s | unavail. s | new leader s | terms |" for name in systems)
    lines = [head, "|---|---|---|---:|" + "---|---:|---:|---:|---:|---:|" * len(systems)]
    plan = next(iter(results.values())).get("nemesis", {}).get("schedule", [])
    by_n = {name: {f["details"].get("n"): f for f in results[name].get("faults_injected", [])} for name in systems}
    for p in plan:
        extra = ", ".join(f"{k} {v}" for k, v in p["params"].items())
        target = p["target"] + (f" {p['index']}" if p["index"] is not None else "")
        cells = [str(p["n"]), p["kind"] + (f" ({extra})" if extra else ""), target, _cell(p["at"])]
        for name in systems:
            cells += _fault_cells(by_n[name].get(p["n"]))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _run_pair(make: Callable[[str], Scenario], out: str, quiet: bool, systems=("raftkv", "etcd")) -> dict:
    """One scenario on each system; each result saved, and for a pair a
    side-by-side table (<out>/compare-....md) and one plot of both."""
    got = {}
    for system in systems:
        got[system] = run_scenario(make(system), quiet=quiet)
        _save(got[system], out)
        click.echo(json.dumps({k: got[system][k] for k in SUMMARY}))
    if "raftkv" in got and "etcd" in got:
        a, b = got["raftkv"], got["etcd"]
        name = a["scenario"].replace("raftkv-", "compare-", 1)
        _save(a, out, plot_results=[a, b], name=name)
        md = table(a, b)
        if "faults_injected" in a:
            md += "\n\n" + fault_table(got)
        with open(os.path.join(out, f"{name}.md"), "w") as f:
            f.write(md + "\n")
        click.echo(md)
    return got


@click.command("compare")
@_options
def compare(**kw) -> None:
    """One scenario on raftkv, then on etcd; a side-by-side table with ratios."""
    got = _run_pair(lambda system: _scenario(system, kw), kw["out"], kw["quiet"])
    raise SystemExit(0 if passed(got["raftkv"]) else 1)


# the matrix the README reports: every fault the harness has, on 3 members
MATRIX = ("put/none,get/none,put/kill-leader,mix/kill-follower,mix/pause-leader,mix/partition-leader,"
          "mix/partition-leader-oneway,mix/partition-follower,mix/restart-all,mix/member-replace,"
          "put/slow-disk,lease-churn/kill-leader,watch-fanout/kill-leader,objects/kill-leader,"
          "put/kill-main-only,put/kill-main-only-all")


def _cell(value, digits: int = 1) -> str:
    return "" if value is None else f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def _timed_fault(result: dict) -> bool:
    """A fault injected at a moment (not none, not a whole-run slow disk)."""
    return any("at" in f for f in result.get("faults", []))


def summary(results: list[dict[str, dict]]) -> str:
    """Markdown: one row per scenario, raftkv next to etcd."""
    lines = ["| workload / fault | ops/s raftkv | ops/s etcd | ratio | p99 ms raftkv | p99 ms etcd "
             "| unavailable s raftkv | unavailable s etcd | checks raftkv | checks etcd |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|---|"]
    for got in results:
        a, b = got.get("raftkv", {}), got.get("etcd", {})
        first = a or b
        ratio = f"{a['ops_per_s'] / b['ops_per_s']:.2f}" if a and b and b.get("ops_per_s") else ""
        lines.append("| " + " | ".join([
            f"{first['workload']} / {first['fault']}", _cell(a.get("ops_per_s")), _cell(b.get("ops_per_s")), ratio,
            _cell(a.get("p99_ms")), _cell(b.get("p99_ms")),
            _cell(a.get("unavailable_s"), 2) if _timed_fault(a) else "",
            _cell(b.get("unavailable_s"), 2) if _timed_fault(b) else "",
            ("pass" if passed(a) else "FAIL") if a else "", ("pass" if passed(b) else "FAIL") if b else "",
        ]) + " |")
    return "\n".join(lines)


@click.command("matrix")
@click.option("--scenarios", default=MATRIX, show_default=True,
              help="workload/fault pairs, comma-separated.")
@click.option("--systems", default="raftkv,etcd", show_default=True)
@click.option("--nodes", default=3, show_default=True)
@click.option("--clients", default=64, show_default=True)
@click.option("--duration", default=30.0, show_default=True)
@click.option("--out", default="results", show_default=True)
@click.option("--quiet", is_flag=True)
def matrix(scenarios: str, systems: str, nodes: int, clients: int, duration: float, out: str,
           quiet: bool) -> None:
    """Every scenario on every system: a JSON per run, a table and a plot per
    scenario, and <out>/matrix.md with one row per scenario."""
    pairs = [item.split("/", 1) for item in scenarios.split(",") if item]
    for workload, fault in pairs:
        if workload not in WORKLOADS or fault not in FAULTS:
            raise click.BadParameter(f"{workload}/{fault}: workloads are {', '.join(WORKLOADS)}; "
                                     f"faults {', '.join(FAULTS)}", param_hint="--scenarios")
    results = []
    for workload, fault in pairs:
        results.append(_run_pair(
            lambda system: Scenario(system=system, nodes=nodes, workload=workload, clients=clients,
                                    duration=duration, fault=fault),
            out, quiet, systems=tuple(systems.split(","))))
        md = summary(results)
        with open(os.path.join(out, "matrix.md"), "w") as f:
            f.write(md + "\n")
    click.echo(md)
    raise SystemExit(0 if all(passed(got["raftkv"]) for got in results if "raftkv" in got) else 1)


# python -m bench fuzz: hostile gRPC, peer and HTTP input for a long time (bench/fuzz.py)
from bench.fuzz import fuzz  # noqa: E402,F401
