"""One scenario: a cluster, a workload, a fault, and every check on the result.

    result = run_scenario(Scenario(system="raftkv", nodes=3, workload="mix",
                                   clients=64, duration=30, fault="kill-leader"))

The cluster is real processes on loopback (raftkv.cluster.local.LocalCluster,
or EtcdCluster with /usr/bin/etcd) in a temporary folder. The load comes from
this process: ``clients`` threads, each with one request in flight, spread over
the members (thread i starts on member i mod N and moves to the next member
after a failure). Each request is exactly one gRPC call (one single-endpoint
raftkv.Client per member, so the client never retries a write behind our
back) and is recorded with its invoke and return times: a failed write's
outcome is unknown, which the linearizability checker allows for.

Every run checks, whatever its fault:
- linearizable: the history of puts, linearizable gets and CASes (bench.linearizability);
- lost_acked_writes: acknowledged writes missing from the store's final history;
- watch_violations: what each watcher received against the final history
  (watchers resume from the revision after the last one they saw when their
  stream breaks);
- converged: every member at the same revision with the same HashKV;
- restart_failures: members a fault killed that did not serve again when
  started (the kill-main faults, bench.kill_main; the nemesis).

With ``Scenario.nemesis == "random"`` the single fault gives way to a schedule
of faults of every kind drawn from the seed (bench.nemesis), recorded in the
result's ``faults_injected``; the checks are the same, on the whole history.
``setup_cluster``, ``drive`` and ``analyse`` are the pieces of a run, for runs
of many stretches of load on one cluster (bench.soak).

Whatever happens, every process of the cluster is gone when it returns (also
children a member forked that outlived it: bench.kill_main.kill_leftovers).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field

from bench import nemesis
from bench.checks import AckedWrite, lost_writes, watch_violations
from bench.faults import FaultRunner, unavailability
from bench.kill_main import kill_leftovers
from bench.linearizability import check
from bench.load import Load, make_load
from bench.partition import PARTITION_FAULTS
from bench.probes import convergence, final_history
from bench.scenario import FAULTS, WORKLOADS, Log, Scenario, ms, pct
from bench.slow_disk import strace_wrapper
from bench.watchers import start_watchers

__all__ = ["FAULTS", "WORKLOADS", "Scenario", "run_scenario", "unavailability", "make_cluster", "setup_cluster",
           "drive", "analyse", "Collected", "started_cluster"]


def make_cluster(system: str, nodes: int, base_dir: str, wrapper: list[str] | None = None,
                 proxied: bool = False, extra_args: list[str] | None = None):
    """``proxied``: all peer traffic through a bench.proxy.PartitionProxy (cluster.peer_proxy);
    ``extra_args``: flags for every member (Scenario.member_args)."""
    from bench.proxy import PartitionProxy
    from raftkv.cluster.local import EtcdCluster, LocalCluster

    proxy = PartitionProxy() if proxied else None
    if system == "raftkv":
        return LocalCluster(nodes, base_dir, wrapper=wrapper, peer_proxy=proxy, extra_args=extra_args)
    if system == "etcd":
        if not os.path.exists(EtcdCluster.ETCD):
            raise RuntimeError(f"etcd is not installed ({EtcdCluster.ETCD}; Debian: apt-get install etcd-server)")
        return EtcdCluster(nodes, base_dir, wrapper=wrapper, peer_proxy=proxy, extra_args=extra_args)
    raise ValueError(f"unknown system {system!r}")


@contextlib.contextmanager
def _reaping(base_dir: str, result: dict):
    """On the way out (after the cluster stopped): kill any process of the
    cluster still there, e.g. a snapshot child whose member was killed alone."""
    try:
        yield
    finally:
        result["leftover_processes_killed"] = len(kill_leftovers(base_dir))


@contextlib.contextmanager
def started_cluster(system: str, nodes: int, label: str):
    """A fresh ``nodes``-member cluster of ``system`` in a temporary folder,
    started and with a leader; afterwards every process of it and the
    folder are gone."""
    tmp = tempfile.mkdtemp(prefix=f"bench-{label}-{system}-")
    try:
        cluster = make_cluster(system, nodes, tmp)
        with _reaping(tmp, {}), cluster:
            cluster.start(timeout=60)
            cluster.leader_index(timeout=30)
            yield cluster
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- the whole run -------------------------------------------------------------

def setup_cluster(s: Scenario, base_dir: str):
    """The scenario's cluster, not started: a slow disk from the start for
    ``slow-disk``, the peer proxy for partitions and the nemesis, the wall
    clock shim for the nemesis on raftkv (bench.nemesis.prepare)."""
    if s.workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {WORKLOADS}")
    if s.fault not in FAULTS:
        raise ValueError(f"fault must be one of {FAULTS}")
    wrapper = strace_wrapper(s.fsync_delay_ms) if s.fault == "slow-disk" else None
    cluster = make_cluster(s.system, s.nodes, base_dir, wrapper=wrapper,
                           proxied=s.fault in PARTITION_FAULTS or s.nemesis != "none", extra_args=s.member_args)
    cluster.nemesis_setup = nemesis.prepare(cluster, s, base_dir) if s.nemesis != "none" else None
    return cluster


def header(s: Scenario) -> dict:
    result = {"scenario": s.name, "system": s.system, "nodes": s.nodes, "workload": s.workload,
              "fault": s.fault_label, "clients": s.clients, "keys": s.keys, "duration_s": s.duration,
              "member_args": s.member_args}
    if s.nemesis != "none":
        result["seed"] = s.seed
    return result


def run_scenario(s: Scenario, quiet: bool = False, keep_dir: str | None = None) -> dict:
    log = Log(quiet)
    tmp = tempfile.mkdtemp(prefix=f"bench-{s.system}-", dir=keep_dir)
    got = Collected()
    result = header(s)
    try:
        cluster = setup_cluster(s, tmp)
        with _reaping(tmp, result), cluster:
            cluster.start(timeout=60)
            cluster.leader_index(timeout=30)
            drive(s, cluster, log, got)
            result.update(got.notes)
    except BaseException:
        if keep_dir is None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if got.load is not None:
            got.load.close()
    analyse(s, got, result, log)
    if keep_dir is None:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return result


@dataclass
class Collected:
    """What one stretch of load on a cluster left for the checks."""
    load: Load | None = None
    watchers: list = field(default_factory=list)
    faults: FaultRunner | None = None
    began: float = 0.0
    load_end: float = 0.0
    start_rev: int = 1
    history: list = field(default_factory=list)
    last_change: int = 0
    conv: dict = field(default_factory=dict)
    final_rev: int = 0
    notes: dict = field(default_factory=dict)


def fault_runner(s: Scenario, cluster, t0: float, log: Log) -> FaultRunner:
    if s.nemesis != "none":
        return nemesis.NemesisRunner(s, cluster, t0, log)
    return FaultRunner(s, cluster, t0, log)


def drive(s: Scenario, cluster, log: Log, got: Collected, make=make_load, history_from_start: bool = False) -> None:
    """On a started cluster: the load, the watchers and the fault (or the
    nemesis) for ``s.duration`` seconds; then every member healed and back,
    and what the checks need from the cluster, into ``got``. The final
    history is replayed from revision 1, or (``history_from_start``) from
    the first revision after the load began (when earlier history may be
    compacted). ``make(s, endpoints, t0)`` makes the load."""
    from raftkv.client.remote import Client

    t0 = time.monotonic()
    got.load = load = make(s, cluster.endpoints, t0)
    load.prepare()
    with Client(cluster.endpoints, timeout=5) as c:
        got.start_rev = c.status().revision + 1
    got.watchers = watchers = start_watchers(load.clients, s.watchers, got.start_rev, t0)
    got.faults = faults = fault_runner(s, cluster, t0, log)
    log(f"[{s.name}] {len(cluster.members)} members up; {s.clients} clients for {s.duration:g}s, "
        f"fault {s.fault_label}")
    got.began = began = load.now()
    load.start()
    faults.start()
    end = began + s.duration
    last_print, last_ok = began, 0
    while load.now() < end:
        time.sleep(min(0.5, max(0.0, end - load.now())))
        if load.now() - last_print >= 5 or load.now() >= end:
            ok, err = load.count()
            dt = load.now() - last_print
            log(f"  {load.now():5.1f}s  ok={ok} errors={err} ok/s(last {dt:.0f}s)={(ok - last_ok) / dt:.0f}")
            last_print, last_ok = load.now(), ok
    load.join()
    got.load_end = load.now()
    stop = getattr(faults, "stop", None)
    if stop is not None:   # the nemesis: no fault after the load, the current one recovers
        stop.set()
    if not faults.done.wait(timeout=60 if stop is None else 150):
        got.notes["fault_thread_still_running"] = True
    faults.heal()
    try:
        cluster.wait_ready(timeout=60)
    except TimeoutError as e:   # a member that does not come back fails `converged`
        got.notes["not_ready_after_run"] = str(e)
        log(f"[{s.name}] {e}")
    load.finish()
    got.conv = conv = convergence(cluster)
    leader = cluster.leader_index(timeout=30)
    # members that disagree fail `converged`; the history is the leader's,
    # so that a stuck member does not also show as every write lost
    got.final_rev = conv.get("revision") or cluster.member_status(leader, timeout=5).revision
    got.history = history = final_history(cluster.members[leader].endpoint, got.final_rev,
                                          start_revision=got.start_rev if history_from_start else 1)
    # the watchers catch up with the prefix's last change (not the store's:
    # a workload may write elsewhere), then stop; many watchers may be
    # far behind, so give up only when they stop making progress
    got.last_change = last_change = max((e.revision for e in history), default=0)
    deadline, progress = time.monotonic() + 20, -1
    while any(w.last_revision < last_change for w in watchers) and time.monotonic() < deadline:
        if sum(w.last_revision for w in watchers) != progress:
            progress = sum(w.last_revision for w in watchers)
            deadline = max(deadline, time.monotonic() + 10)
        time.sleep(0.1)
    for w in watchers:
        w.stop.set()
    for w in watchers:
        w.thread.join(timeout=5)


def analyse(s: Scenario, got: Collected, result: dict, log: Log) -> dict:
    """Every figure and check of ``got`` into ``result`` (the cluster may be gone)."""
    load, watchers, faults, history = got.load, got.watchers, got.faults, got.history
    began, load_end, start_rev, last_change, conv = got.began, got.load_end, got.start_rev, got.last_change, got.conv
    log(f"[{s.name}] checking {sum(len(o) for o in load.ops)} ops ...")
    all_ops = [op for ops in load.ops for op in ops]
    lat = sorted(b - a for a, b in load.completed())
    ok_count = len(lat)
    errors = sum(load.errors)
    elapsed = load_end - began
    lin = check([op for op in all_ops], timeout=s.check_timeout)
    acked = [AckedWrite(op.key, op.value, op.revision) for op in all_ops
             if op.ok and (op.kind == "put" or (op.kind == "cas" and op.output[0]))]
    lost = lost_writes(acked, history)
    w_problems = []
    for w in watchers:
        w_problems += watch_violations(history, [evs for _, evs in w.responses], start_revision=start_rev,
                                       until_revision=last_change)
    # watch delivery latency: event received - its write acknowledged
    acked_at = {op.revision: op.ret for op in all_ops
                if op.ok and op.revision and (op.kind == "put" or (op.kind == "cas" and op.output[0]))}
    delays = sorted(t - acked_at[e.revision] for w in watchers for t, evs in w.responses for e in evs
                    if e.revision in acked_at)
    delivered = sum(len(evs) for w in watchers for _, evs in w.responses)
    ok_returns = [b for a, b in load.completed()]
    fault_reports = []
    for ev in faults.events:
        if "at" in ev:
            ev.update(unavailability(ok_returns, ev["at"], load_end, window=ev.get("window_s", s.fault_delay + 30)))
        fault_reports.append({k: (round(v, 3) if isinstance(v, float) else v) for k, v in ev.items()})
    result.update({
        "ops": ok_count,
        "errors": errors,
        "ops_per_s": round(ok_count / elapsed, 1) if elapsed > 0 else 0.0,
        "p50_ms": ms(pct(lat, 0.50)),
        "p95_ms": ms(pct(lat, 0.95)),
        "p99_ms": ms(pct(lat, 0.99)),
        "max_ms": ms(lat[-1]) if lat else None,
        "unavailable_s": max((f.get("unavailable_s", 0.0) for f in fault_reports), default=0.0),
        "time_to_leader_s": max((f["time_to_leader_s"] for f in fault_reports
                                 if f.get("time_to_leader_s") is not None), default=None),
        "faults": fault_reports,
        "restart_failures": sum(len(f.get("restart_failed", {})) for f in fault_reports),
        "linearizable": lin.linearizable,
        "linearizability": lin.summary(),
        "lost_acked_writes": len(lost),
        "lost_examples": [asdict(w) for w in lost[:5]],
        "acked_writes": len(acked),
        "watch_violations": len(w_problems),
        "watch_problems": w_problems[:10],
        "watchers": s.watchers,
        "watch_events_delivered": delivered,
        "watch_events_per_s": round(delivered / elapsed, 1) if elapsed > 0 else 0.0,
        "watch_resumes": sum(w.resumes for w in watchers),
        "watch_delay_p50_ms": ms(pct(delays, 0.5)),
        "watch_delay_p99_ms": ms(pct(delays, 0.99)),
        "converged": conv["converged"],
        "convergence": {k: list(v) if isinstance(v, tuple) else v for k, v in conv.items()},
        "history_events": len(history),
        "timeline": timeline(load, began, load_end),
    })
    if isinstance(faults, nemesis.NemesisRunner):
        result["faults_injected"] = nemesis.injected(fault_reports)
        result["nemesis"] = {"kind": s.nemesis, "seed": s.seed,
                             "schedule": [p.as_dict() for p in faults.plan],
                             "not_injected": faults.not_injected,
                             "errors": [f for f in fault_reports if f.get("fault") == "nemesis"],
                             **(getattr(faults.cluster, "nemesis_setup", None) or {})}
        result["faults_by_kind"] = nemesis.summary(result)
    result.update(load.report(history))
    log(f"[{s.name}] {result['ops_per_s']} ops/s p99 {result['p99_ms']} ms, unavailable {result['unavailable_s']} s, "
        f"linearizable={result['linearizable']} lost={result['lost_acked_writes']} "
        f"watch_violations={result['watch_violations']} converged={result['converged']}"
        + (f" restart_failures={result['restart_failures']}" if result["restart_failures"] else ""))
    return result


def timeline(load: Load, began: float, end: float, step: float = 1.0) -> list[dict]:
    buckets: dict[int, list[float]] = {}
    errors: dict[int, int] = {}
    for a, b, ok in load.calls():
        if ok:
            buckets.setdefault(int((b - began) // step), []).append(b - a)
        else:
            errors[int((a - began) // step)] = errors.get(int((a - began) // step), 0) + 1
    out = []
    for i in range(int((end - began) // step)):   # whole buckets only
        lat = sorted(buckets.get(i, []))
        out.append({"t": round(began + (i + 0.5) * step, 3), "ops_per_s": round(len(lat) / step, 1),
                    "p99_ms": ms(pct(lat, 0.99)) if lat else None, "errors": errors.get(i, 0)})
    return out
