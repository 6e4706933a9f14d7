"""``objects``: the object layer's list+watch with label selectors, as a
Kubernetes controller uses it, over ObjectStore on raftkv.Client.

Each client thread owns a few ConfigMap names in namespace ``bench`` and
creates, updates (relabelling at random: app in {a,b,c}, tier in {web,db})
and deletes them, and now and then lists the namespace with a label selector.
Every object-layer call (a create is a namespace read and a txn, an update or
a delete a read and a txn) is one recorded request for ops/s, latency and
unavailability; a NotFound, AlreadyExists or Conflict is an answer, anything
else a failure, after which the thread moves to the next member.

Informers, one per selector in :data:`SELECTORS`, spread over the members,
do what client-go's reflector does: list, then watch from the list's
resourceVersion, keeping a cache of name -> resourceVersion. When the watch
ends (its member was killed, or stops answering Status, as a gRPC keepalive
would notice) the informer watches again from the last resourceVersion it saw,
on the next member; if that is too old (Expired) it lists again. They run
in a child process (:class:`InformerProcess`) so that their event decoding
does not share the load's GIL.

At the end (every member back): one more write that every informer's watch
sees (the namespace's ``zz-sync`` ConfigMap), and once each informer has
caught up with it, a fresh list per selector. :func:`informer_violations`
then checks each informer: resourceVersions strictly increasing with no
duplicates, only matching objects ADDED or MODIFIED, no ADDED for an object it
already has, no MODIFIED or DELETED for one it does not, and its cache equal
to the fresh list (names and resourceVersions).

The objects live under /registry/, not the benchmark's prefix: the harness's
own watchers and final history see none of it.
"""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

from bench.load import Load
from bench.scenario import Scenario, ms, pct

NAMESPACE = "bench"
KIND = "configmaps"
APPS = ("a", "b", "c")
TIERS = ("web", "db")
SELECTORS = ("app=a", "app in (b,c),tier=web", "tier!=db", "", "app=b,tier=db", "app notin (a)")
NAMES_PER_CLIENT = 4
LIST_SHARE = 0.1
SYNC_NAME = "zz-sync"
# A member that does not answer Status within this long is treated as gone
# by the informers watching through it.
PROBE_TIMEOUT = 1.5


@dataclass(frozen=True)
class Listed:
    """A list an informer (re)started from."""
    t: float
    rv: int
    items: dict[str, int]        # name -> resourceVersion


@dataclass(frozen=True)
class Seen:
    """One watch event an informer received."""
    t: float
    type: str                    # ADDED | MODIFIED | DELETED
    name: str
    rv: int
    labels: dict[str, str] = field(default_factory=dict, hash=False)


def informer_violations(selector: str, log: list[Listed | Seen],
                        final: dict[str, int] | None) -> list[str]:
    """What is wrong with one informer's lists and events, and with its
    cache against ``final`` (a fresh list with the same selector; None: no
    final list could be made)."""
    from raftkv.objects.selectors import parse_selector

    matches = parse_selector(selector).matches
    problems: list[str] = []
    where = f"informer {selector or '<all>'!r}"
    cache: dict[str, int] = {}
    last = 0
    delivered: set[tuple[str, int]] = set()
    for entry in log:
        if isinstance(entry, Listed):
            if entry.rv < last:
                problems.append(f"{where}: relisted at resourceVersion {entry.rv}, behind {last} it had seen")
            cache = dict(entry.items)
            last = max(last, entry.rv)
            continue
        e = entry
        if (e.name, e.rv) in delivered:
            problems.append(f"{where}: duplicate {e.type} {e.name} at resourceVersion {e.rv}")
        elif e.rv <= last:
            problems.append(f"{where}: {e.type} {e.name} at resourceVersion {e.rv} after {last}")
        delivered.add((e.name, e.rv))
        if e.type in ("ADDED", "MODIFIED") and not matches(e.labels):
            problems.append(f"{where}: {e.type} {e.name}@{e.rv} does not match (labels {e.labels})")
        if e.type == "ADDED" and e.name in cache:
            problems.append(f"{where}: ADDED {e.name}@{e.rv} but it has {e.name}@{cache[e.name]} already")
        elif e.type in ("MODIFIED", "DELETED") and e.name not in cache:
            problems.append(f"{where}: {e.type} {e.name}@{e.rv} of an object it does not have")
        if e.type == "DELETED":
            cache.pop(e.name, None)
        else:
            cache[e.name] = e.rv
        last = max(last, e.rv)
    if final is None:
        problems.append(f"{where}: no final list to compare its cache with")
    elif cache != final:
        missing = sorted(set(final) - set(cache))
        extra = sorted(set(cache) - set(final))
        stale = sorted(n for n in set(cache) & set(final) if cache[n] != final[n])
        problems.append(f"{where}: cache ({len(cache)} objects) differs from a fresh list ({len(final)}): "
                        f"missing {missing[:5]}, extra {extra[:5]}, "
                        f"other resourceVersion {[(n, cache[n], final[n]) for n in stale[:5]]}")
    return problems


def _body(name: str, labels: dict[str, str], seq: int, pad: str) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": NAMESPACE, "labels": labels},
            "data": {"seq": str(seq), "pad": pad}}


class Informer:
    """List, then watch from the list's resourceVersion; keep a cache."""

    def __init__(self, stores: list, selector: str, first_member: int, t0: float) -> None:
        self.stores = stores
        self.selector = selector
        self.member = first_member
        self.t0 = t0
        self.log: list[Listed | Seen] = []
        self.cache: dict[str, int] = {}
        self.rv = 0                      # the last resourceVersion it listed or received
        self.rewatches = 0
        self.relists = 0
        self.watch = None                # the current ObjectWatch
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"bench-informer-{first_member}")

    @property
    def progress(self) -> int:
        """The revision its watch has seen every change of the namespace up to."""
        w = self.watch
        return max(self.rv, w.resource_version if w is not None else 0)

    def start(self) -> None:
        self.thread.start()

    def end(self) -> None:
        self.stop.set()
        self.interrupt()
        if self.thread.ident is not None:
            self.thread.join(timeout=10)

    def interrupt(self) -> None:
        """End the current watch (its member seems gone); it resumes elsewhere."""
        w = self.watch
        if w is not None:
            try:
                w.stop()
            except Exception:  # noqa: BLE001 - it is going away anyway
                pass

    def _now(self) -> float:
        return time.monotonic() - self.t0

    def _list(self, store) -> None:
        from raftkv.objects.store import parse_resource_version

        got = store.list(KIND, NAMESPACE, label_selector=self.selector)
        items = {o["metadata"]["name"]: parse_resource_version(o["metadata"]["resourceVersion"]) for o in got}
        rv = int(got.resource_version)
        self.log.append(Listed(self._now(), rv, items))
        self.cache = dict(items)
        self.rv = rv

    def _run(self) -> None:
        from raftkv.objects.errors import Expired

        listed = False
        while not self.stop.is_set():
            store = self.stores[self.member]
            try:
                if not listed:
                    self._list(store)
                    listed = True
                w = store.watch(KIND, NAMESPACE, label_selector=self.selector, resource_version=self.rv)
            except Expired:
                listed = False
                self.relists += 1
                continue
            except Exception:  # noqa: BLE001 - the member is down: try the next
                self.member = (self.member + 1) % len(self.stores)
                self.stop.wait(0.1)
                continue
            self.watch = w
            if self.stop.is_set():     # end() may have looked before self.watch was set
                w.stop()
            try:
                for ev in w:
                    m = ev.object.get("metadata", {})
                    rv = int(ev.resource_version)
                    self.log.append(Seen(self._now(), ev.type, ev.name, rv, dict(m.get("labels") or {})))
                    if ev.type == "DELETED":
                        self.cache.pop(ev.name, None)
                    else:
                        self.cache[ev.name] = rv
                    self.rv = max(self.rv, rv)
            except Expired:
                listed = False
                self.relists += 1
            except Exception:  # noqa: BLE001 - the stream broke
                pass
            finally:
                self.watch = None
                w.stop()
            if not self.stop.is_set():
                self.rewatches += 1
                self.member = (self.member + 1) % len(self.stores)
                self.stop.wait(0.05)


class InformerGroup:
    """The informers, one per selector spread over the members, and a prober
    that ends the watches of those whose member does not answer Status."""

    def __init__(self, endpoints: list[str], selectors: tuple[str, ...], t0: float, timeout: float) -> None:
        from raftkv.client.remote import Client
        from raftkv.objects import ObjectStore

        self.endpoints = endpoints
        self.clients = [Client([e], timeout=timeout) for e in endpoints]
        self.stores = [ObjectStore(c, create_default_namespace=False) for c in self.clients]
        self.informers = [Informer(self.stores, sel, i % len(endpoints), t0) for i, sel in enumerate(selectors)]
        self._stop = threading.Event()
        self._prober = threading.Thread(target=self._probe, daemon=True, name="bench-informer-probe")

    def start(self) -> None:
        for inf in self.informers:
            inf.start()
        self._prober.start()

    def stop(self) -> None:
        self._stop.set()
        for inf in self.informers:
            inf.stop.set()
        for inf in self.informers:
            inf.end()
        if self._prober.ident is not None:
            self._prober.join(timeout=5)
        for c in self.clients:
            c.close()

    def _probe(self) -> None:
        from raftkv.client.remote import Client

        probes = [Client([e], timeout=PROBE_TIMEOUT) for e in self.endpoints]
        try:
            while not self._stop.wait(0.5):
                for i, probe in enumerate(probes):
                    watching = [inf for inf in self.informers if inf.member == i and inf.watch is not None]
                    if not watching:
                        continue
                    try:
                        probe.status()
                    except Exception:  # noqa: BLE001 - down, paused or cut off
                        for inf in watching:
                            inf.interrupt()
        finally:
            for p in probes:
                p.close()


def _informer_child(endpoints, selectors, t0, timeout, progress, logged, listed, done, conn) -> None:
    group = InformerGroup(endpoints, selectors, t0, timeout)
    group.start()
    while not done.wait(0.05):
        for i, inf in enumerate(group.informers):
            progress[i] = inf.progress
            logged[i] = len(inf.log)
        listed.value = sum(1 for inf in group.informers if inf.log)
    group.stop()
    conn.send([(inf.log, inf.rewatches, inf.relists) for inf in group.informers])
    conn.close()


class InformerProcess:
    """An :class:`InformerGroup` in a child process of its own, so that
    decoding every event of every informer does not compete for the load's
    GIL (and the delays measure the cluster, not this process). Both
    processes time events on the same clock (CLOCK_MONOTONIC)."""

    def __init__(self, endpoints: list[str], selectors: tuple[str, ...], t0: float, timeout: float) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")   # never fork a process with gRPC threads
        self.selectors = selectors
        self.progress = ctx.RawArray("q", len(selectors))
        self.logged = ctx.RawArray("q", len(selectors))
        self.listed = ctx.RawValue("q", 0)
        self._done = ctx.Event()
        self._conn, child = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(target=_informer_child, daemon=True, name="bench-informers", args=(
            endpoints, selectors, t0, timeout, self.progress, self.logged, self.listed, self._done, child))
        self.proc.start()
        child.close()
        self.logs: list[list[Listed | Seen]] = [[] for _ in selectors]
        self.rewatches = [0] * len(selectors)
        self.relists = [0] * len(selectors)
        self.stopped = False

    def wait_listed(self, timeout: float) -> bool:
        """Until every informer has made its first list."""
        deadline = time.monotonic() + timeout
        while self.listed.value < len(self.selectors) and time.monotonic() < deadline and self.proc.is_alive():
            time.sleep(0.05)
        return self.listed.value >= len(self.selectors)

    def stop(self) -> None:
        """Stop the informers and take what they saw."""
        if self.stopped:
            return
        self.stopped = True
        self._done.set()
        try:
            if self._conn.poll(60):
                for i, (log, rewatches, relists) in enumerate(self._conn.recv()):
                    self.logs[i], self.rewatches[i], self.relists[i] = log, rewatches, relists
        except (EOFError, OSError):
            pass   # the child died: its informers' logs are lost, which the checks report
        self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.terminate()


class ObjectLoad(Load):
    def __init__(self, scenario: Scenario, endpoints: list[str], t0: float) -> None:
        super().__init__(scenario, endpoints, t0)
        self.endpoints = endpoints
        self.stores: list = []
        self.informers: InformerProcess | None = None
        # (kind, invoke, return, ok): kind create | update | delete | list
        self.requests: list[list[tuple[str, float, float, bool]]] = [[] for _ in range(scenario.clients)]
        self.acked: list[dict[int, float]] = [{} for _ in range(scenario.clients)]  # resourceVersion -> ack
        self.final: list[dict[str, int] | None] = [None] * len(SELECTORS)
        self.finish_problems: list[str] = []
        self.sync_rv = 0
        self.pad_text = "." * max(0, scenario.value_size - 12)

    # ---- life cycle ---------------------------------------------------------

    def prepare(self) -> None:
        from raftkv.objects import AlreadyExists, ObjectStore

        self.stores = [ObjectStore(c, create_default_namespace=False) for c in self.clients]
        try:
            self.stores[0].create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}})
        except AlreadyExists:
            pass
        self.informers = InformerProcess(self.endpoints, SELECTORS, self.t0, self.s.timeout)
        if not self.informers.wait_listed(timeout=60):
            self.informers.stop()
            raise RuntimeError("the informers did not start")

    def finish(self) -> None:
        """The sync write, the informers caught up with it, a fresh list per selector."""
        inf = self.informers
        assert inf is not None
        self.sync_rv = self._sync_write()
        if not self.sync_rv:
            self.finish_problems.append("could not write the sync object: no final comparison")
        deadline = time.monotonic() + 20
        while self.sync_rv and time.monotonic() < deadline and min(inf.progress) < self.sync_rv:
            time.sleep(0.05)
        # and nothing more arrives (a watch response may name a revision
        # ahead of the events it carries)
        quiet_until, seen = time.monotonic() + 0.3, -1
        while time.monotonic() < min(quiet_until, deadline):
            if sum(inf.logged) != seen:
                seen, quiet_until = sum(inf.logged), time.monotonic() + 0.3
            time.sleep(0.05)
        for sel, progress in zip(SELECTORS, inf.progress):
            if self.sync_rv and progress < self.sync_rv:
                self.finish_problems.append(f"informer {sel or '<all>'!r} did not catch up: "
                                            f"at {progress}, the sync write is at {self.sync_rv}")
        inf.stop()
        if self.sync_rv:
            self.final = [self._fresh_list(sel) for sel in SELECTORS]

    def close(self) -> None:
        if self.informers is not None:
            self.informers.stop()
        super().close()

    def _sync_write(self) -> int:
        from raftkv.objects import AlreadyExists

        deadline = time.monotonic() + 30
        i = 0
        while time.monotonic() < deadline:
            store = self.stores[i % len(self.stores)]
            try:
                try:
                    obj = store.create(_body(SYNC_NAME, {"sync": "1"}, 0, ""))
                except AlreadyExists:   # an earlier try of ours went through
                    obj = store.get(KIND, SYNC_NAME, NAMESPACE)
                return int(obj["metadata"]["resourceVersion"])
            except Exception:  # noqa: BLE001 - try the next member
                i += 1
                time.sleep(0.2)
        return 0

    def _fresh_list(self, selector: str) -> dict[str, int] | None:
        deadline = time.monotonic() + 20
        i = 0
        while time.monotonic() < deadline:
            try:
                got = self.stores[i % len(self.stores)].list(KIND, NAMESPACE, label_selector=selector)
                return {o["metadata"]["name"]: int(o["metadata"]["resourceVersion"]) for o in got}
            except Exception:  # noqa: BLE001 - try the next member
                i += 1
                time.sleep(0.2)
        self.finish_problems.append(f"no fresh list for {selector or '<all>'!r}")
        return None

    # ---- the clients --------------------------------------------------------

    def calls(self) -> list[tuple[float, float, bool]]:
        return [(a, b, ok) for rs in self.requests for _, a, b, ok in rs]

    def count(self) -> tuple[int, int]:
        return sum(1 for rs in self.requests for *_, ok in rs if ok), sum(self.errors)

    def _worker(self, n: int) -> None:
        from raftkv.objects import AlreadyExists, Conflict, NotFound

        rng = random.Random(self.s.seed * 100_003 + n)
        member = n % len(self.stores)
        names = [f"c{n}-{i}" for i in range(NAMES_PER_CLIENT)]
        exists: dict[str, bool | None] = {name: False for name in names}   # None: unknown
        mine, acked = self.requests[n], self.acked[n]
        seq = 0
        while not self.stop.is_set():
            store = self.stores[member]
            seq += 1
            name = rng.choice(names)
            if rng.random() < LIST_SHARE:
                kind = "list"
            elif exists[name] is False:
                kind = "create"
            else:
                kind = "update" if rng.random() < 0.7 else "delete"
            labels = {"app": rng.choice(APPS), "tier": rng.choice(TIERS)}
            t = self.now()
            try:
                if kind == "list":
                    store.list(KIND, NAMESPACE, label_selector=rng.choice(SELECTORS))
                elif kind == "create":
                    obj = store.create(_body(name, labels, seq, self.pad_text))
                    acked[int(obj["metadata"]["resourceVersion"])] = self.now()
                    exists[name] = True
                elif kind == "update":
                    obj = store.update(_body(name, labels, seq, self.pad_text))
                    acked[int(obj["metadata"]["resourceVersion"])] = self.now()
                    exists[name] = True
                else:
                    store.delete(KIND, name, NAMESPACE)
                    exists[name] = False
            except (NotFound, AlreadyExists, Conflict) as e:   # answers
                if kind != "list":
                    exists[name] = not isinstance(e, NotFound)
            except Exception:
                mine.append((kind, t, self.now(), False))
                self.errors[n] += 1
                if kind != "list":
                    exists[name] = None
                member = (member + 1) % len(self.stores)
                self.stop.wait(0.02)
                continue
            mine.append((kind, t, self.now(), True))

    # ---- the report ---------------------------------------------------------

    def report(self, history: list) -> dict:
        inf = self.informers
        assert inf is not None
        problems = list(self.finish_problems)
        for sel, log, final in zip(SELECTORS, inf.logs, self.final):
            problems += informer_violations(sel, log, final)
        acked = {rv: t for a in self.acked for rv, t in a.items()}
        delays = sorted(e.t - acked[e.rv] for log in inf.logs for e in log
                        if isinstance(e, Seen) and e.rv in acked)

        def latency(kinds: tuple[str, ...]) -> list[float]:
            return sorted(b - a for rs in self.requests for k, a, b, ok in rs if ok and k in kinds)

        writes, lists = latency(("create", "update", "delete")), latency(("list",))
        out: dict = {f"{k}s": sum(1 for rs in self.requests for kk, *_, ok in rs if ok and kk == k)
                     for k in ("create", "update", "delete", "list")}
        out.update({
            "write_p50_ms": ms(pct(writes, 0.5)),
            "write_p99_ms": ms(pct(writes, 0.99)),
            "list_p50_ms": ms(pct(lists, 0.5)),
            "list_p99_ms": ms(pct(lists, 0.99)),
            "informers": len(SELECTORS),
            "informer_selectors": list(SELECTORS),
            "informer_events": sum(1 for log in inf.logs for e in log if isinstance(e, Seen)),
            "informer_rewatches": sum(inf.rewatches),
            "informer_relists": sum(inf.relists),
            "informer_delay_p50_ms": ms(pct(delays, 0.5)),
            "informer_delay_p99_ms": ms(pct(delays, 0.99)),
            "informer_final_objects": [len(f) if f is not None else None for f in self.final],
            "object_problems": problems[:10],
            "workload_violations": len(problems),
        })
        return out
