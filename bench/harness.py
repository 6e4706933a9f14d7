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

import math
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field

from bench.checks import AckedWrite, Ev, lost_writes, watch_violations
from bench.linearizability import ANY, Op, check

WORKLOADS = ("put", "get", "sget", "cas", "mix")
FAULTS = ("none", "kill-leader", "kill-follower", "kill-random", "pause-leader", "restart-all")
PREFIX = "/bench/"


@dataclass
class Scenario:
    system: str = "raftkv"
    nodes: int = 3
    workload: str = "mix"
    clients: int = 64
    duration: float = 30.0
    fault: str = "none"
    keys: int = 32
    fault_at: float | None = None        # seconds into the run; default a third of it
    fault_delay: float = 3.0             # until the killed member restarts / the paused one resumes
    timeout: float = 2.0                 # per request
    watchers: int = 2
    value_size: int = 64
    seed: int = 1
    check_timeout: float = 120.0

    @property
    def name(self) -> str:
        return f"{self.system}-{self.nodes}n-{self.workload}-{self.fault}-c{self.clients}"


def _pct(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[i]


def _ms(x: float) -> float | None:
    return None if x != x else round(x * 1000, 3)


class _Log:
    def __init__(self, quiet: bool) -> None:
        self.quiet = quiet

    def __call__(self, message: str) -> None:
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)


def make_cluster(system: str, nodes: int, base_dir: str):
    from raftkv.cluster.local import EtcdCluster, LocalCluster

    if system == "raftkv":
        return LocalCluster(nodes, base_dir)
    if system == "etcd":
        if not os.path.exists(EtcdCluster.ETCD):
            raise RuntimeError(f"etcd is not installed ({EtcdCluster.ETCD}; Debian: apt-get install etcd-server)")
        return EtcdCluster(nodes, base_dir)
    raise ValueError(f"unknown system {system!r}")


# ---- the load -------------------------------------------------------------------

class Load:
    def __init__(self, scenario: Scenario, endpoints: list[str], t0: float) -> None:
        from raftkv.client.remote import Client

        self.s = scenario
        self.t0 = t0
        self.clients = [Client([e], timeout=scenario.timeout) for e in endpoints]
        self.keys = [f"{PREFIX}k{i:03d}" for i in range(scenario.keys)]
        self.stop = threading.Event()
        self.ops: list[list[Op]] = [[] for _ in range(scenario.clients)]
        self.reads: list[list[tuple[float, float, bool]]] = [[] for _ in range(scenario.clients)]  # sget
        self.errors = [0] * scenario.clients
        self.threads: list[threading.Thread] = []
        self.pad = b"|" + b"." * max(0, scenario.value_size - 12)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def preload(self) -> None:
        """Give every key a value first (recorded like any other op)."""
        ops = []
        for n, key in enumerate(self.keys):
            value = f"init-{n}"
            t = self.now()
            r = self.clients[0].put(key, value.encode() + self.pad)
            ops.append(Op(-1, "put", key, t, self.now(), value=value, revision=r.revision))
        self.ops.append(ops)

    def start(self) -> None:
        for n in range(self.s.clients):
            t = threading.Thread(target=self._worker, args=(n,), daemon=True, name=f"bench-client-{n}")
            t.start()
            self.threads.append(t)

    def join(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(timeout=self.s.timeout * 3 + 5)

    def close(self) -> None:
        for c in self.clients:
            c.close()

    def _choose(self, rng: random.Random) -> str:
        w = self.s.workload
        if w != "mix":
            return w
        x = rng.random()
        return "get" if x < 0.5 else "put" if x < 0.8 else "cas"

    def _worker(self, n: int) -> None:
        from raftkv.client import ops as kvops

        rng = random.Random(self.s.seed * 100_003 + n)
        member = n % len(self.clients)
        seen: dict[str, str | None] = {}
        mine, reads = self.ops[n], self.reads[n]
        seq = 0
        while not self.stop.is_set():
            kind = self._choose(rng)
            key = rng.choice(self.keys)
            client = self.clients[member]
            seq += 1
            value = f"{n}-{seq}"
            op = Op(n, kind, key, self.now())
            try:
                if kind == "put":
                    op.value = value
                    r = client.put(key, value.encode() + self.pad)
                    op.revision = r.revision
                elif kind in ("get", "sget"):
                    kv = client.get(key, serializable=(kind == "sget"))
                    op.output = _decode(kv.value) if kv else None
                    seen[key] = op.output
                elif kind == "cas":
                    expected = seen.get(key)
                    op.value, op.expected = value, expected
                    guard = (kvops.version(key) == 0) if expected is None \
                        else (kvops.value(key) == expected.encode() + self.pad)
                    r = client.txn().if_(guard).then(kvops.put(key, value.encode() + self.pad)) \
                        .else_(kvops.get(key)).commit()
                    op.revision = r.revision
                    if r.succeeded:
                        op.output = (True, ANY)
                        seen[key] = value
                    else:
                        kvs = r.responses[0].kvs if r.responses else None
                        observed = _decode(kvs[0].value) if kvs else None
                        op.output = (False, observed if r.responses else ANY)
                        seen[key] = observed
                op.ret = self.now()
            except Exception:
                op.ok = False
                op.ret = math.inf
                self.errors[n] += 1
                member = (member + 1) % len(self.clients)
                if kind == "sget":
                    reads.append((op.invoke, self.now(), False))
                    continue
                mine.append(op)
                self.stop.wait(0.02)
                continue
            if kind == "sget":
                reads.append((op.invoke, op.ret, True))
            else:
                mine.append(op)

    def completed(self) -> list[tuple[float, float]]:
        """(invoke, return) of every successful request."""
        out = [(op.invoke, op.ret) for ops in self.ops for op in ops if op.ok and op.client >= 0]
        out += [(a, b) for rs in self.reads for a, b, ok in rs if ok]
        return out

    def count(self) -> tuple[int, int]:
        ok = sum(1 for ops in self.ops for op in ops if op.ok) + sum(1 for rs in self.reads for *_, g in rs if g)
        return ok, sum(self.errors)


# ---- watchers -------------------------------------------------------------------

def _decode(value: bytes) -> str:
    """The benchmark's values are ``<unique id>|<padding>``."""
    return value.split(b"|", 1)[0].decode()


def _ev(event) -> Ev:
    kv = event.kv
    if int(event.type) == 1:
        return Ev(kv.mod_revision, kv.key.decode(), "DELETE", None)
    return Ev(kv.mod_revision, kv.key.decode(), "PUT", _decode(kv.value))


class Watcher:
    """Watches the prefix from ``start_revision``, resuming on another member
    from the revision after the last one received whenever a stream ends."""

    def __init__(self, clients, first_member: int, start_revision: int, t0: float) -> None:
        self.clients = clients
        self.member = first_member
        self.start_revision = start_revision
        self.next_revision = start_revision
        self.t0 = t0
        self.responses: list[tuple[float, list[Ev]]] = []
        self.resumes = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"bench-watch-{first_member}")
        self.thread.start()

    @property
    def last_revision(self) -> int:
        return self.next_revision - 1

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                w = self.clients[self.member].watch(PREFIX, prefix=True, start_revision=self.next_revision)
            except Exception:
                self.member = (self.member + 1) % len(self.clients)
                self.stop.wait(0.1)
                continue
            try:
                while not self.stop.is_set():
                    r = w.next_response(timeout=0.2)
                    if r is None:
                        if w.canceled:
                            break
                        continue
                    if r.events:
                        evs = [_ev(e) for e in r.events]
                        self.responses.append((time.monotonic() - self.t0, evs))
                        self.next_revision = evs[-1].revision + 1
                    if r.canceled:
                        break
            finally:
                try:
                    w.cancel()
                except Exception:
                    pass
            if not self.stop.is_set():
                self.resumes += 1
                self.member = (self.member + 1) % len(self.clients)
                self.stop.wait(0.05)


# ---- cluster-level probes ------------------------------------------------------

def hash_kv(endpoint: str, timeout: float = 3.0) -> tuple[int, int]:
    """(revision, HashKV hash) of one member, over a raw gRPC stub."""
    import grpc

    from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

    with grpc.insecure_channel(endpoint) as channel:
        r = rpc_pb2_grpc.MaintenanceStub(channel).HashKV(rpc_pb2.HashKVRequest(revision=0), timeout=timeout)
        return r.header.revision, r.hash


def convergence(cluster, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    last: dict = {}
    while True:
        states = {}
        for m in cluster.members:
            try:
                states[m.name] = hash_kv(m.endpoint)
            except Exception as e:  # noqa: BLE001 - report whatever went wrong
                states[m.name] = ("error", type(e).__name__)
        last = states
        values = set(states.values())
        if len(values) == 1 and "error" not in next(iter(values)):
            rev, h = next(iter(values))
            return {"converged": True, "revision": rev, "hash": h, "members": states}
        if time.monotonic() > deadline:
            return {"converged": False, "members": {k: list(v) for k, v in last.items()}}
        time.sleep(0.5)


def final_history(endpoint: str, until_revision: int, timeout: float = 60.0) -> list[Ev]:
    """Every change under the prefix, replayed by a watch from revision 1."""
    from raftkv.client.remote import Client

    events: list[Ev] = []
    with Client([endpoint], timeout=10) as c:
        w = c.watch(PREFIX, prefix=True, start_revision=1)
        deadline = time.monotonic() + timeout
        last = 0
        try:
            while last < until_revision and time.monotonic() < deadline:
                r = w.next_response(timeout=3.0)
                if r is None:
                    break
                for e in r.events:
                    events.append(_ev(e))
                    last = max(last, e.kv.mod_revision)
                if r.canceled:
                    break
        finally:
            w.cancel()
    return events


# ---- faults ---------------------------------------------------------------------

class FaultRunner:
    def __init__(self, scenario: Scenario, cluster, t0: float, log: _Log) -> None:
        self.s = scenario
        self.cluster = cluster
        self.t0 = t0
        self.log = log
        self.events: list[dict] = []
        self.paused: set[int] = set()
        self.thread = threading.Thread(target=self._run, daemon=True, name="bench-fault")
        self.rng = random.Random(scenario.seed)
        self.done = threading.Event()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            self._inject()
        except Exception as e:  # noqa: BLE001
            self.events.append({"fault": self.s.fault, "error": repr(e)})
            self.log(f"fault {self.s.fault} failed: {e!r}")
        finally:
            self.done.set()

    def _new_leader(self, exclude: set[int], old: int | None) -> tuple[float | None, int | None]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                i = self.cluster.leader_index(timeout=2, exclude=exclude)
            except TimeoutError:
                continue
            if old is None or i != old:
                return self.now(), i
            time.sleep(0.05)
        return None, None

    def _inject(self) -> None:
        s, c = self.s, self.cluster
        at = s.fault_at if s.fault_at is not None else s.duration / 3
        time.sleep(max(0.0, at - self.now()))
        if s.fault == "none":
            return
        leader = c.leader_index(timeout=10)
        n = len(c.members)
        event: dict = {"fault": s.fault, "leader_before": c.members[leader].name}
        if s.fault in ("kill-leader", "kill-follower", "kill-random"):
            victim = {"kill-leader": leader, "kill-follower": (leader + 1) % n,
                      "kill-random": self.rng.randrange(n)}[s.fault]
            event["member"] = c.members[victim].name
            event["at"] = self.now()
            c.kill(victim)
            self.log(f"  {event['at']:.1f}s: kill -9 {c.members[victim].name}"
                     f"{' (leader)' if victim == leader else ''}")
            if victim == leader:
                t, new = self._new_leader({victim}, leader)
                event["new_leader_at"] = t
                event["new_leader"] = c.members[new].name if new is not None else None
            time.sleep(max(0.0, event["at"] + s.fault_delay - self.now()))
            c.start_member(victim)
            event["recovered_at"] = self.now()
            self.log(f"  {event['recovered_at']:.1f}s: restarted {c.members[victim].name}")
        elif s.fault == "pause-leader":
            event["member"] = c.members[leader].name
            event["at"] = self.now()
            c.pause(leader)
            self.paused.add(leader)
            self.log(f"  {event['at']:.1f}s: SIGSTOP {c.members[leader].name} (leader)")
            t, new = self._new_leader({leader}, leader)
            event["new_leader_at"] = t
            event["new_leader"] = c.members[new].name if new is not None else None
            time.sleep(max(0.0, event["at"] + s.fault_delay - self.now()))
            c.resume(leader)
            self.paused.discard(leader)
            event["recovered_at"] = self.now()
            self.log(f"  {event['recovered_at']:.1f}s: SIGCONT {c.members[leader].name}")
        elif s.fault == "restart-all":
            event["member"] = "all"
            event["at"] = self.now()
            for i in range(n):
                c.kill(i)
            self.log(f"  {event['at']:.1f}s: kill -9 every member")
            time.sleep(max(0.0, event["at"] + min(s.fault_delay, 1.0) - self.now()))
            for i in range(n):
                c.start_member(i)
            event["recovered_at"] = self.now()
            self.log(f"  {event['recovered_at']:.1f}s: started every member")
            t, new = self._new_leader(set(), None)
            event["new_leader_at"] = t
            event["new_leader"] = c.members[new].name if new is not None else None
        else:
            raise ValueError(f"unknown fault {s.fault!r}")
        if event.get("new_leader_at") is not None:
            event["time_to_leader_s"] = round(event["new_leader_at"] - event["at"], 3)
        self.events.append(event)

    def heal(self) -> None:
        """Whatever the fault left undone: resume, restart."""
        for i in list(self.paused):
            self.cluster.resume(i)
        self.paused.clear()
        for i, m in enumerate(self.cluster.members):
            if not m.running:
                self.cluster.start_member(i)


def unavailability(ok_returns: list[float], fault_at: float, end: float, window: float) -> dict:
    """The longest stretch without a successful response around a fault:
    from the last success before the gap to the first success after it
    (None if service never came back before the run ended)."""
    import bisect

    times = sorted(ok_returns)
    i = bisect.bisect_right(times, fault_at)
    last_before = times[i - 1] if i > 0 else 0.0
    after = [t for t in times[i:] if t <= fault_at + window]
    if not after:
        return {"unavailable_s": round(end - last_before, 3), "last_success_before": round(last_before, 3),
                "first_success_after": None}
    best = (after[0] - last_before, last_before, after[0])
    prev = after[0]
    for t in after[1:]:
        if t - prev > best[0]:
            best = (t - prev, prev, t)
        prev = t
    return {"unavailable_s": round(best[0], 3), "last_success_before": round(best[1], 3),
            "first_success_after": round(best[2], 3)}


# ---- the whole run -------------------------------------------------------------

def run_scenario(s: Scenario, quiet: bool = False, keep_dir: str | None = None) -> dict:
    from raftkv.client.remote import Client

    log = _Log(quiet)
    if s.workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {WORKLOADS}")
    if s.fault not in FAULTS:
        raise ValueError(f"fault must be one of {FAULTS}")
    tmp = tempfile.mkdtemp(prefix=f"bench-{s.system}-", dir=keep_dir)
    cluster = make_cluster(s.system, s.nodes, tmp)
    result: dict = {"scenario": s.name, "system": s.system, "nodes": s.nodes, "workload": s.workload,
                    "fault": s.fault, "clients": s.clients, "keys": s.keys, "duration_s": s.duration}
    load = watchers = faults = None
    try:
        with cluster:
            cluster.start(timeout=60)
            cluster.leader_index(timeout=30)
            t0 = time.monotonic()
            load = Load(s, cluster.endpoints, t0)
            if s.workload in ("get", "sget"):
                load.preload()
            with Client(cluster.endpoints, timeout=5) as c:
                start_rev = c.status().revision + 1
            watchers = [Watcher(load.clients, i % s.nodes, start_rev, t0) for i in range(s.watchers)]
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
            conv = convergence(cluster)
            # the watchers catch up, then stop
            final_rev = conv.get("revision") or 0
            deadline = time.monotonic() + 20
            while any(w.last_revision < final_rev for w in watchers) and time.monotonic() < deadline:
                time.sleep(0.1)
            for w in watchers:
                w.stop.set()
            for w in watchers:
                w.thread.join(timeout=5)
            leader = cluster.leader_index(timeout=30)
            history = final_history(cluster.members[leader].endpoint, final_rev)
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
    measured = [op for op in all_ops if op.client >= 0]
    lat = sorted([op.ret - op.invoke for op in measured if op.ok]
                 + [b - a for rs in load.reads for a, b, ok in rs if ok])
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
                                       until_revision=max((e.revision for e in history), default=0))
    # watch delivery latency: event received - its write acknowledged
    acked_at = {op.revision: op.ret for op in all_ops
                if op.ok and op.revision and (op.kind == "put" or (op.kind == "cas" and op.output[0]))}
    delays = sorted(t - acked_at[e.revision] for w in watchers for t, evs in w.responses for e in evs
                    if e.revision in acked_at)
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
        "p50_ms": _ms(_pct(lat, 0.50)),
        "p95_ms": _ms(_pct(lat, 0.95)),
        "p99_ms": _ms(_pct(lat, 0.99)),
        "max_ms": _ms(lat[-1]) if lat else None,
        "unavailable_s": max((f.get("unavailable_s", 0.0) for f in fault_reports), default=0.0),
        "time_to_leader_s": max((f.get("time_to_leader_s") or 0.0 for f in fault_reports), default=None)
        if fault_reports else None,
        "faults": fault_reports,
        "linearizable": lin.linearizable,
        "linearizability": lin.summary(),
        "lost_acked_writes": len(lost),
        "lost_examples": [asdict(w) for w in lost[:5]],
        "acked_writes": len(acked),
        "watch_violations": len(w_problems),
        "watch_problems": w_problems[:10],
        "watchers": s.watchers,
        "watch_events_delivered": sum(len(evs) for w in watchers for _, evs in w.responses),
        "watch_resumes": sum(w.resumes for w in watchers),
        "watch_delay_p50_ms": _ms(_pct(delays, 0.5)),
        "watch_delay_p99_ms": _ms(_pct(delays, 0.99)),
        "converged": conv["converged"],
        "convergence": {k: list(v) if isinstance(v, tuple) else v for k, v in conv.items()},
        "history_events": len(history),
        "timeline": timeline(load, began, load_end),
    })
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
    for ops in load.ops:
        for op in ops:
            if op.client < 0:
                continue
            if op.ok:
                buckets.setdefault(int((op.ret - began) // step), []).append(op.ret - op.invoke)
            else:
                errors[int((op.invoke - began) // step)] = errors.get(int((op.invoke - began) // step), 0) + 1
    for rs in load.reads:
        for a, b, ok in rs:
            if ok:
                buckets.setdefault(int((b - began) // step), []).append(b - a)
    out = []
    for i in range(int((end - began) // step)):   # whole buckets only
        lat = sorted(buckets.get(i, []))
        out.append({"t": round(began + (i + 0.5) * step, 3), "ops_per_s": round(len(lat) / step, 1),
                    "p99_ms": _ms(_pct(lat, 0.99)) if lat else None, "errors": errors.get(i, 0)})
    return out


def median_or_none(xs: list[float]) -> float | None:
    return statistics.median(xs) if xs else None
