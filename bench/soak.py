"""Soak: a long run under the random nemesis, watching each member's memory and file descriptors.

    python -m bench soak --minutes 30                   # raftkv, 3 members, 64 clients
    python -m bench soak --minutes 30 --system etcd     # the same against etcd

One cluster (proxied peers and the wall clock shim, as for ``--nemesis
random``) lives for the whole soak. The load comes in rounds of
``--round-seconds`` (60) on that cluster, each a ``mix`` load with its own
random nemesis schedule (seed ``seed * 1000 + round``) and its own 32 keys
(``/bench/r<round>/k..``), and each checked like any run (linearizable, no
acknowledged write lost, watch guarantees, converged, restarted members back)
on its own history. After a round's checks the store is compacted to that
round's last revision, as Kubernetes' API server compacts every few minutes:
without it, history (and so memory) would grow for as long as the soak runs,
on both systems, and say nothing about leaks.

Meanwhile, every ``--sample-every`` (5) seconds, a sampler reads each
member's server process (under strace during a slow-disk window, the traced
child): VmRSS, RssAnon and the thread count from /proc/<pid>/status, and the
number of open file descriptors in /proc/<pid>/fd.

Verdict (:func:`growth_verdict`), for the cluster's total RSS and total fd
count, over the samples taken while every member ran: the first third of the
soak is warm-up; "no growth" when the last third's median is within 10 % of
the middle third's (for fds, within 10 % plus 5 per member: a few client
connections come and go). Medians, so that the dips and catch-ups of members
that a fault killed and restarted do not decide it. Limitation: under the
nemesis every member is restarted often (each kill, slow-disk window,
restart-all, or as a replacement), so a slow leak in one process is cut short
by its restart; the per-process lifetimes are in the result, and ``--nemesis
none`` soaks the same load without faults, where the same processes run the
whole time.

Results: ``<out>/soak-<system>-<nodes>n-c<clients>-<minutes>m.json`` (every
round's figures and checks, every fault, every sample, the verdicts) and a
``.md`` with the RSS table over time (and a ``.png`` with matplotlib).
"""

from __future__ import annotations

import json
import os
import statistics
import tempfile
import threading
import time
from dataclasses import replace

import click

from bench import kill_main
from bench.scenario import NEMESES, PREFIX, Log, Scenario

TOLERANCE = 0.10       # the last third's median may exceed the middle third's by this much
FD_SLACK_PER_MEMBER = 5


# ---- sampling -------------------------------------------------------------------------

def proc_sample(pid: int) -> dict | None:
    """VmRSS and RssAnon (KiB), threads and open fds of a live process, or None."""
    out: dict = {"pid": pid}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key == "VmRSS":
                    out["rss_kb"] = int(value.split()[0])
                elif key == "RssAnon":
                    out["rss_anon_kb"] = int(value.split()[0])
                elif key == "Threads":
                    out["threads"] = int(value.split()[0])
                elif key == "State" and value.split()[0] == "Z":
                    return None
        out["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
    except (OSError, ValueError, IndexError):
        return None
    if "rss_kb" not in out:   # a kernel thread or a process on its way out
        return None
    return out


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def server_pid(member) -> int | None:
    """The member's server process: the one started, or, under strace, its child."""
    process = member.process
    if process is None or process.poll() is not None:
        return None
    pid = process.pid
    if _comm(pid) == "strace":
        kids = kill_main.children(pid)
        return kids[0] if kids else None
    return pid


class Sampler:
    """Samples every member of ``cluster`` every ``every`` seconds in a thread."""

    def __init__(self, cluster, every: float, t0: float) -> None:
        self.cluster = cluster
        self.every = every
        self.t0 = t0
        self.samples: list[dict] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name="bench-soak-sampler")

    def start(self) -> Sampler:
        self.thread.start()
        return self

    def sample_once(self) -> dict:
        members = {}
        for member in list(self.cluster.members):
            pid = server_pid(member)
            if pid is None:
                continue
            got = proc_sample(pid)
            if got is not None:
                got["children"] = len(kill_main.children(pid))
                members[member.name] = got
        return {"t": round(time.monotonic() - self.t0, 2), "members": members}

    def _run(self) -> None:
        while not self.stop.is_set():
            self.samples.append(self.sample_once())
            self.stop.wait(self.every)

    def close(self) -> list[dict]:
        self.stop.set()
        self.thread.join(timeout=10)
        return self.samples


# ---- the verdict ------------------------------------------------------------------------

def totals(samples: list[dict], metric: str, nodes: int) -> list[tuple[float, float]]:
    """(t, sum of ``metric`` over the members) of each sample in which ``nodes`` members ran."""
    out = []
    for s in samples:
        values = [m[metric] for m in s["members"].values() if metric in m]
        if len(values) >= nodes:
            out.append((s["t"], float(sum(values))))
    return out


def growth_verdict(points: list[tuple[float, float]], tolerance: float = TOLERANCE, slack: float = 0.0,
                   min_points: int = 3) -> dict:
    """Whether a metric stopped growing once warm: over the span of
    ``points`` ((t, value), in time order), the first third is warm-up, and
    the verdict is "no growth" when the median of the last third is at most
    the middle third's median x (1 + tolerance) + slack; "growth" otherwise;
    "undecided" with fewer than ``min_points`` points in either third."""
    if not points:
        return {"verdict": "undecided", "why": "no samples"}
    t_first, t_last = points[0][0], points[-1][0]
    span = t_last - t_first
    a, b = t_first + span / 3, t_first + 2 * span / 3
    middle = [v for t, v in points if a <= t < b]
    last = [v for t, v in points if t >= b]
    out: dict = {"warm_from_s": round(a, 1), "last_third_from_s": round(b, 1), "tolerance": tolerance,
                 "slack": slack, "middle_points": len(middle), "last_points": len(last)}
    if len(middle) < min_points or len(last) < min_points:
        return {**out, "verdict": "undecided", "why": f"fewer than {min_points} samples in a third"}
    m_mid, m_last = statistics.median(middle), statistics.median(last)
    limit = m_mid * (1 + tolerance) + slack
    out.update({"middle_median": m_mid, "last_median": m_last, "limit": round(limit, 1),
                "growth": round(m_last / m_mid - 1, 4) if m_mid else None,
                "verdict": "no growth" if m_last <= limit else "growth"})
    return out


def verdicts(samples: list[dict], nodes: int) -> dict:
    return {
        "rss": growth_verdict(totals(samples, "rss_kb", nodes)),
        "fds": growth_verdict(totals(samples, "fds", nodes), slack=FD_SLACK_PER_MEMBER * nodes),
        "per_member_rss": {name: growth_verdict([(s["t"], float(s["members"][name]["rss_kb"]))
                                                 for s in samples if name in s["members"]])
                           for name in sorted({n for s in samples for n in s["members"]})},
    }


def lifetimes(samples: list[dict]) -> list[dict]:
    """Each server process seen: its member, first and last sample, RSS then."""
    seen: dict[tuple[str, int], dict] = {}
    for s in samples:
        for name, m in s["members"].items():
            row = seen.setdefault((name, m["pid"]), {"member": name, "pid": m["pid"], "first_s": s["t"],
                                                     "first_rss_kb": m["rss_kb"], "samples": 0})
            row.update(last_s=s["t"], last_rss_kb=m["rss_kb"], max_rss_kb=max(row.get("max_rss_kb", 0), m["rss_kb"]),
                       last_fds=m["fds"])
            row["samples"] += 1
    return sorted(seen.values(), key=lambda r: (r["first_s"], r["member"]))


def rss_table(samples: list[dict], step: float = 60.0) -> str:
    """Markdown, one row per ``step`` seconds (medians over its samples): the
    cluster's total RSS and fds, the smallest and largest member's RSS and the
    largest fd count (members come and go under the nemesis, so by rank, not
    by name), and the server processes seen (each restart is a new one)."""
    buckets: dict[int, list[dict]] = {}
    for s in samples:
        buckets.setdefault(int(s["t"] // step), []).append(s)
    lines = ["| t (min) | members | total RSS MiB | smallest member RSS MiB | largest member RSS MiB | total fds "
             "| most fds of a member | processes seen |", "|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def med(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    for i in sorted(buckets):
        group = [s for s in buckets[i] if s["members"]]
        if not group:
            continue
        rss = [[m["rss_kb"] for m in s["members"].values()] for s in group]
        fds = [[m["fds"] for m in s["members"].values()] for s in group]
        pids = {(name, m["pid"]) for s in group for name, m in s["members"].items()}
        lines.append(f"| {i * step / 60:g} | {med([len(r) for r in rss]):g} | {med([sum(r) for r in rss]) / 1024:.0f} "
                     f"| {med([min(r) for r in rss]) / 1024:.0f} | {med([max(r) for r in rss]) / 1024:.0f} "
                     f"| {med([sum(f) for f in fds]):.0f} | {med([max(f) for f in fds]):.0f} | {len(pids)} |")
    return "\n".join(lines)


def plot_soak(result: dict, path: str) -> str | None:
    from bench.plot import available

    if not available():
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    samples = result["samples"]
    names = sorted({n for s in samples for n in s["members"]})
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 6), sharex=True)
    for name in names:
        pts = [(s["t"] / 60, s["members"][name]) for s in samples if name in s["members"]]
        ax1.plot([t for t, _ in pts], [m["rss_kb"] / 1024 for _, m in pts], ".", markersize=2, label=name)
        ax2.plot([t for t, _ in pts], [m["fds"] for _, m in pts], ".", markersize=2, label=name)
    ax1.set_title(f"soak: {result['system']}, {result['nodes']} members, {result['clients']} clients, "
                  f"nemesis {result['nemesis']}")
    ax1.set_ylabel("RSS MiB")
    ax2.set_ylabel("open fds")
    ax2.set_xlabel("minutes")
    ax1.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


# ---- the soak ------------------------------------------------------------------------------

ROUND_KEYS = ("round", "seed", "duration_s", "ops_per_s", "p99_ms", "errors", "unavailable_s", "linearizable",
              "lost_acked_writes", "watch_violations", "converged", "restart_failures")


def _round_load(prefix: str):
    def make(s: Scenario, endpoints: list[str], t0: float):
        from bench.load import make_load

        load = make_load(s, endpoints, t0)
        load.keys = [f"{prefix}k{i:03d}" for i in range(s.keys)]   # this round's own keys
        return load
    return make


def run_soak(system: str = "raftkv", minutes: float = 30.0, nodes: int = 3, clients: int = 64,
             round_seconds: float = 60.0, sample_every: float = 5.0, seed: int = 1, nemesis: str = "random",
             keys: int = 32, quiet: bool = False, keep_dir: str | None = None) -> dict:
    from bench.cli import passed
    from bench.harness import Collected, _reaping, analyse, drive, setup_cluster
    from raftkv.client.remote import Client

    log = Log(quiet)
    base = Scenario(system=system, nodes=nodes, workload="mix", clients=clients, duration=round_seconds,
                    keys=keys, seed=seed, nemesis=nemesis,
                    snapshot_count=None)
    tmp = tempfile.mkdtemp(prefix=f"bench-soak-{system}-", dir=keep_dir)
    result: dict = {"soak": True, "system": system, "nodes": nodes, "clients": clients, "minutes": minutes,
                    "round_seconds": round_seconds, "sample_every_s": sample_every, "seed": seed,
                    "nemesis": nemesis, "workload": "mix", "keys": keys, "member_args": base.member_args}
    rounds: list[dict] = []
    sampler = None
    started = time.monotonic()
    try:
        cluster = setup_cluster(base, tmp)
        with _reaping(tmp, result), cluster:
            cluster.start(timeout=60)
            cluster.leader_index(timeout=30)
            sampler = Sampler(cluster, sample_every, started).start()
            loaded = 0.0
            n = 0
            while loaded < minutes * 60 - 1:
                duration = min(round_seconds, minutes * 60 - loaded)
                if duration < 20 and n > 0:
                    break
                s = replace(base, seed=seed * 1000 + n, duration=duration)
                got = Collected()
                round_started = time.monotonic() - started
                log(f"[soak {system}] round {n} at {round_started / 60:.1f} min ({len(rounds)} done, "
                    f"{loaded / 60:.1f} of {minutes:g} min of load)")
                try:
                    drive(s, cluster, log, got, make=_round_load(f"{PREFIX}r{n:03d}/"), history_from_start=True)
                finally:
                    if got.load is not None:
                        got.load.close()
                r = analyse(s, got, {"round": n, "seed": s.seed, "duration_s": duration, **got.notes}, log)
                r["started_s"] = round(round_started, 1)
                r["passed"] = passed(r)
                r.pop("timeline", None)
                rounds.append(r)
                loaded += duration
                n += 1
                with Client(cluster.endpoints, timeout=10) as c:   # as an API server does, every few minutes
                    c.compact(got.final_rev)
                r["compacted_to"] = got.final_rev
            result["samples"] = sampler.close()
    except BaseException:
        if sampler is not None:
            sampler.close()
        if keep_dir is None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        raise
    result["wall_minutes"] = round((time.monotonic() - started) / 60, 1)
    result["rounds"] = rounds
    result["checks"] = {
        "rounds": len(rounds),
        "rounds_passed": sum(r["passed"] for r in rounds),
        "linearizable": all(r["linearizable"] is True for r in rounds),
        "lost_acked_writes": sum(r["lost_acked_writes"] for r in rounds),
        "watch_violations": sum(r["watch_violations"] for r in rounds),
        "converged": all(r["converged"] for r in rounds),
        "restart_failures": sum(r["restart_failures"] for r in rounds),
        "faults_injected": sum(len(r.get("faults_injected", [])) for r in rounds),
    }
    result["verdict"] = verdicts(result["samples"], nodes)
    result["processes"] = lifetimes(result["samples"])
    result["passed"] = (result["checks"]["rounds_passed"] == len(rounds) > 0
                        and result["verdict"]["rss"]["verdict"] == "no growth"
                        and result["verdict"]["fds"]["verdict"] == "no growth")
    if keep_dir is None:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return result


def report(result: dict) -> str:
    """Markdown: the verdicts, every round's checks, RSS and fds over time."""
    v, c = result["verdict"], result["checks"]

    def line(name: str, x: dict, unit: str, scale: float) -> str:
        if x["verdict"] == "undecided":
            return f"- {name}: undecided ({x.get('why')})"
        return (f"- {name}: **{x['verdict']}** - median {x['middle_median'] / scale:.1f} {unit} in the middle third, "
                f"{x['last_median'] / scale:.1f} {unit} in the last (limit {x['limit'] / scale:.1f} {unit}, "
                f"growth {x['growth'] * 100:+.1f} %)")

    out = [f"## soak: {result['system']}, {result['nodes']} members, {result['clients']} clients, "
           f"{result['minutes']:g} min of load in {len(result['rounds'])} rounds of {result['round_seconds']:g} s, "
           f"nemesis {result['nemesis']} (seed {result['seed']}), {result['wall_minutes']:g} min wall", "",
           line("cluster RSS (sum over members)", v["rss"], "MiB", 1024),
           line("cluster open fds (sum over members)", v["fds"], "fds", 1),
           f"- checks: {c['rounds_passed']}/{c['rounds']} rounds passed; linearizable {c['linearizable']}, "
           f"lost acked writes {c['lost_acked_writes']}, watch violations {c['watch_violations']}, "
           f"converged {c['converged']}, restart failures {c['restart_failures']}; "
           f"{c['faults_injected']} faults injected", "",
           "| round | seed | ops/s | p99 ms | errors | max unavail. s | faults | linearizable | lost | watch viol. "
           "| converged | restart fail. | pass |", "|---:|---:|---:|---:|---:|---:|---|---|---:|---:|---|---:|---|"]
    for r in result["rounds"]:
        kinds = ", ".join(f"{f['kind']}" for f in r.get("faults_injected", []))
        out.append(f"| {r['round']} | {r['seed']} | {r['ops_per_s']} | {r['p99_ms']} | {r['errors']} | "
                   f"{r['unavailable_s']} | {kinds} | {r['linearizable']} | {r['lost_acked_writes']} | "
                   f"{r['watch_violations']} | {r['converged']} | {r['restart_failures']} | "
                   f"{'pass' if r['passed'] else 'FAIL'} |")
    out += ["", rss_table(result["samples"])]
    return "\n".join(out)


@click.command("soak")
@click.option("--minutes", default=30.0, show_default=True, help="Minutes of load (checks between rounds add to it).")
@click.option("--system", type=click.Choice(["raftkv", "etcd"]), default="raftkv", show_default=True)
@click.option("--nodes", default=3, show_default=True)
@click.option("--clients", default=64, show_default=True)
@click.option("--round-seconds", default=60.0, show_default=True,
              help="Load per round; each round is checked on its own, then the store compacted.")
@click.option("--sample-every", default=5.0, show_default=True, help="Seconds between RSS/fd samples.")
@click.option("--nemesis", type=click.Choice(NEMESES), default="random", show_default=True)
@click.option("--seed", default=1, show_default=True, help="Round n's nemesis seed is seed*1000+n.")
@click.option("--out", default="results", show_default=True)
@click.option("--quiet", is_flag=True)
def soak(minutes: float, system: str, nodes: int, clients: int, round_seconds: float, sample_every: float,
         nemesis: str, seed: int, out: str, quiet: bool) -> None:
    """A long run under the random nemesis: every round checked, each
    member's RSS and open fds sampled, and a verdict on growth."""
    result = run_soak(system=system, minutes=minutes, nodes=nodes, clients=clients, round_seconds=round_seconds,
                      sample_every=sample_every, seed=seed, nemesis=nemesis, quiet=quiet)
    os.makedirs(out, exist_ok=True)
    name = f"soak-{system}-{nodes}n-c{clients}-{minutes:g}m"
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(result, f, indent=1)
    md = report(result)
    with open(os.path.join(out, f"{name}.md"), "w") as f:
        f.write(md + "\n")
    png = plot_soak(result, os.path.join(out, f"{name}.png"))
    if png:
        click.echo(f"plot: {png}", err=True)
    click.echo(md)
    raise SystemExit(0 if result["passed"] else 1)
