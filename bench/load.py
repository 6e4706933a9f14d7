"""The register load: ``clients`` threads doing puts, gets and compare-and-swaps.

Each thread has one request in flight and starts on member i mod N, moving to
the next member after a failure. Each request is exactly one gRPC call (a
single-endpoint raftkv.Client per member, so nothing is retried behind our
back) and is recorded with its invoke and return times: a failed write's
outcome is unknown, which the linearizability checker allows for."""

from __future__ import annotations

import math
import random
import threading
import time

from bench.linearizability import ANY, Op
from bench.scenario import PREFIX, Scenario


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

    def prepare(self) -> None:
        """Before the clock starts: reads need something to read."""
        if self.s.workload in ("get", "sget"):
            self.preload()

    def report(self, history: list) -> dict:
        """Figures and checks of this workload beyond the common ones; a
        non-zero ``workload_violations`` fails the run."""
        return {}

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
                    op.output = decode(kv.value) if kv else None
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
                        observed = decode(kvs[0].value) if kvs else None
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

    def finish(self) -> None:
        """After the load and the fault, with every member back: whatever the
        workload must still ask the cluster (report() runs when it is gone)."""

    def calls(self) -> list[tuple[float, float, bool]]:
        """(invoke, return, ok) of every measured request."""
        out = [(op.invoke, op.ret, op.ok) for ops in self.ops for op in ops if op.client >= 0]
        out += [r for rs in self.reads for r in rs]
        return out

    def completed(self) -> list[tuple[float, float]]:
        """(invoke, return) of every successful request."""
        return [(a, b) for a, b, ok in self.calls() if ok]

    def count(self) -> tuple[int, int]:
        ok = sum(1 for ops in self.ops for op in ops if op.ok) + sum(1 for rs in self.reads for *_, g in rs if g)
        return ok, sum(self.errors)


def decode(value: bytes) -> str:
    """The benchmark's values are ``<unique id>|<padding>``."""
    return value.split(b"|", 1)[0].decode()


def make_load(scenario: Scenario, endpoints: list[str], t0: float) -> Load:
    """The load for the scenario's workload."""
    if scenario.workload == "lease-churn":
        from bench.lease_churn import LeaseChurnLoad

        return LeaseChurnLoad(scenario, endpoints, t0)
    if scenario.workload == "watch-fanout":
        from bench.fanout import FanoutLoad

        return FanoutLoad(scenario, endpoints, t0)
    if scenario.workload == "objects":
        from bench.object_load import ObjectLoad

        return ObjectLoad(scenario, endpoints, t0)
    return Load(scenario, endpoints, t0)
