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
- converged: every member at the same revision with the same HashKV.
"""

from __future__ import annotations

import os
import tempfile
import time
from dataclasses import asdict

from bench.checks import AckedWrite, lost_writes, watch_violations
from bench.faults import FaultRunner, unavailability
from bench.linearizability import check
from bench.load import Load, make_load
from bench.partition import PARTITION_FAULTS
from bench.probes import convergence, final_history
from bench.scenario import FAULTS, WORKLOADS, Log, Scenario, ms, pct
from bench.slow_disk import strace_wrapper
from bench.watchers import start_watchers

__all__ = ["FAULTS", "WORKLOADS", "Scenario", "run_scenario", "unavailability", "make_cluster"]


def make_cluster(system: str, nodes: int, base_dir: str, wrapper: list[str] | None = None,
                 proxied: bool = False):
    """``proxied``: all peer traffic through a bench.proxy.PartitionProxy (cluster.peer_proxy)."""
    from bench.proxy import PartitionProxy
    from raftkv.cluster.local import EtcdCluster, LocalCluster

    proxy = PartitionProxy() if proxied else None
    if system == "raftkv":
        return LocalCluster(nodes, base_dir, wrapper=wrapper, peer_proxy=proxy)
    if system == "etcd":
        if not os.path.exists(EtcdCluster.ETCD):
            raise RuntimeError(f"etcd is not installed ({EtcdCluster.ETCD}; Debian: apt-get install etcd-server)")
        return EtcdCluster(nodes, base_dir, wrapper=wrapper, peer_proxy=proxy)
    raise ValueError(f"unknown system {system!r}")


# ---- the whole run -------------------------------------------------------------

def run_scenario(s: Scenario, quiet: bool = False, keep_dir: str | None = None) -> dict:
    from raftkv.client.remote import Client

    log = Log(quiet)
    if s.workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {WORKLOADS}")
    if s.fault not in FAULTS:
        raise ValueError(f"fault must be one of {FAULTS}")
    tmp = tempfile.mkdtemp(prefix=f"bench-{s.system}-", dir=keep_dir)
    wrapper = strace_wrapper(s.fsync_delay_ms) if s.fault == "slow-disk" else None
    cluster = make_cluster(s.system, s.nodes, tmp, wrapper=wrapper, proxied=s.fault in PARTITION_FAULTS)
    result: dict = {"scenario": s.name, "system": s.system, "nodes": s.nodes, "workload": s.workload,
                    "fault": s.fault, "clients": s.clients, "keys": s.keys, "duration_s": s.duration}
    load = watchers = faults = None
    try:
        with cluster:
            cluster.start(timeout=60)
            cluster.leader_index(timeout=30)
            t0 = time.monotonic()
            load = make_load(s, cluster.endpoints, t0)
            load.prepare()
            with Client(cluster.endpoints, timeout=5) as c:
                start_rev = c.status().revision + 1
            watchers = start_watchers(load.clients, s.watchers, start_rev, t0)
            faults = FaultRunner(s, cluster, t0, log)
            log(f"[{s.name}] {s.nodes} members up; {s.clients} clients for {s.duration:g}s, fault {s.fault}")
            began = load.now()
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
            load_end = load.now()
            faults.done.wait(timeout=60)
            faults.heal()
            cluster.wait_ready(timeout=60)
            load.finish()
            conv = convergence(cluster)
            leader = cluster.leader_index(timeout=30)
            # members that disagree fail `converged`; the history is the leader's,
            # so that a stuck member does not also show as every write lost
            final_rev = conv.get("revision") or cluster.member_status(leader, timeout=5).revision
            history = final_history(cluster.members[leader].endpoint, final_rev)
            # the watchers catch up with the prefix's last change (not the store's:
            # a workload may write elsewhere), then stop; many watchers may be
            # far behind, so give up only when they stop making progress
            last_change = max((e.revision for e in history), default=0)
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
    except BaseException:
        if keep_dir is None:
            import shutil

            shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        if load is not None:
            load.close()
    # ---- analysis (the cluster is gone) ----
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
            ev.update(unavailability(ok_returns, ev["at"], load_end, window=s.fault_delay + 30))
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
    result.update(load.report(history))
    log(f"[{s.name}] {result['ops_per_s']} ops/s p99 {result['p99_ms']} ms, unavailable {result['unavailable_s']} s, "
        f"linearizable={result['linearizable']} lost={result['lost_acked_writes']} "
        f"watch_violations={result['watch_violations']} converged={result['converged']}")
    if keep_dir is None:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
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
