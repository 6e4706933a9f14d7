"""``lease-churn``: each client loops LeaseGrant -> put a key of its own with
that lease -> LeaseRevoke.

Every gRPC call is one recorded request (ops/s, latency, unavailability). The
puts are ordinary acknowledged writes: the lost-writes check finds each in
the final history at its revision, and the linearizability checker sees one
put per key (the keys are written once; their deletion by the revoke is not a
register operation, and nobody reads them). A revoke whose outcome is unknown
is retried on the next member until some member answers, so that a lease
does not outlive the run by accident; "lease not found" then means it went.

The workload's own check (:func:`lease_violations`) against the final history:
every key of a lease whose revoke was answered has a DELETE after its put and
is not alive at the end, and no lease vanished before its TTL (a put or a
first revoke answered "lease not found" sooner than TTL after the grant).
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from bench.checks import Ev
from bench.linearizability import Op
from bench.load import Load
from bench.scenario import PREFIX, Scenario, ms, pct

TTL = 10


@dataclass
class LeaseRecord:
    client: int
    key: str
    lease_id: int
    granted_at: float            # the grant's invoke: the lease may not expire before granted_at + ttl
    ttl: int = TTL
    put: Op | None = None        # None: not attempted
    revoke: str = ""             # "acked"; "gone" (lease not found, after a revoke of unknown outcome); "" unconfirmed
    early: str = ""              # how the lease was seen gone before its TTL, if it was


def lease_violations(leases: Iterable[LeaseRecord], history: list[Ev]) -> list[str]:
    """What the final history says against the leases' revokes and TTLs."""
    by_key: dict[str, list[Ev]] = defaultdict(list)
    for e in history:
        by_key[e.key].append(e)
    problems = []
    for rec in leases:
        name = f"lease {rec.lease_id:x} ({rec.key})"
        if rec.early:
            problems.append(f"{name} gone before its TTL of {rec.ttl}s: {rec.early}")
        if not rec.revoke:
            continue
        evs = by_key.get(rec.key, [])
        if rec.put is not None and rec.put.ok:
            put_revision = rec.put.revision
        else:   # a put of unknown outcome: did it happen?
            puts = [e.revision for e in evs if e.type == "PUT"]
            if not puts:
                continue
            put_revision = puts[0]
        if not any(e.type == "DELETE" and e.revision > put_revision for e in evs):
            problems.append(f"{name} revoked ({rec.revoke}) but its key has no DELETE after its put "
                            f"at revision {put_revision}")
        if evs and evs[-1].type == "PUT":
            problems.append(f"{name} revoked ({rec.revoke}) but its key is alive at the end "
                            f"(PUT at revision {evs[-1].revision})")
    return problems


class LeaseChurnLoad(Load):
    def __init__(self, scenario: Scenario, endpoints: list[str], t0: float, ttl: int = TTL) -> None:
        super().__init__(scenario, endpoints, t0)
        self.ttl = ttl
        self.leases: list[list[LeaseRecord]] = [[] for _ in range(scenario.clients)]
        # (kind, invoke, return, ok) of the grants and revokes; the puts are in self.ops
        self.lease_calls: list[list[tuple[str, float, float, bool]]] = [[] for _ in range(scenario.clients)]

    def calls(self) -> list[tuple[float, float, bool]]:
        return super().calls() + [(a, b, ok) for cs in self.lease_calls for _, a, b, ok in cs]

    def count(self) -> tuple[int, int]:
        ok, errors = super().count()
        return ok + sum(1 for cs in self.lease_calls for *_, g in cs if g), errors

    def _record(self, n: int, kind: str, invoke: float, ok: bool) -> None:
        self.lease_calls[n].append((kind, invoke, self.now(), ok))
        if not ok:
            self.errors[n] += 1

    def _worker(self, n: int) -> None:
        from raftkv.errors import LeaseNotFound

        member = n % len(self.clients)
        seq = 0
        while not self.stop.is_set():
            seq += 1
            key = f"{PREFIX}lease/{n}/{seq}"
            t = self.now()
            try:
                lease = self.clients[member].lease(self.ttl)
            except Exception:
                self._record(n, "grant", t, False)
                member = (member + 1) % len(self.clients)
                self.stop.wait(0.02)
                continue
            self._record(n, "grant", t, True)
            rec = LeaseRecord(n, key, lease.id, t, max(self.ttl, lease.ttl))
            self.leases[n].append(rec)

            value = f"{n}-{seq}"
            op = Op(n, "put", key, self.now(), value=value)
            rec.put = op
            try:
                op.revision = self.clients[member].put(key, value.encode() + self.pad, lease=lease.id).revision
                op.ret = self.now()
                self.ops[n].append(op)
            except LeaseNotFound:
                # a definite answer: no put; the lease is gone already
                op.ok, op.ret = False, math.inf
                self.ops[n].append(op)
                self.errors[n] += 1
                rec.revoke = "gone"
                if self.now() < rec.granted_at + rec.ttl:
                    rec.early = f"the put answered 'lease not found' {self.now() - rec.granted_at:.2f}s after the grant"
                continue
            except Exception:
                op.ok, op.ret = False, math.inf
                self.ops[n].append(op)
                self.errors[n] += 1
                member = (member + 1) % len(self.clients)
            member = self._revoke(n, rec, member)

    def _revoke(self, n: int, rec: LeaseRecord, member: int) -> int:
        """Revoke until some member answers (a few tries once the run is over)."""
        from raftkv.errors import LeaseNotFound

        unknown = False
        tries_after_stop = 0
        while True:
            t = self.now()
            try:
                self.clients[member].lease_revoke(rec.lease_id)
                self._record(n, "revoke", t, True)
                rec.revoke = "acked"
                return member
            except LeaseNotFound:
                self._record(n, "revoke", t, True)
                rec.revoke = "gone"
                if not unknown and self.now() < rec.granted_at + rec.ttl:
                    rec.early = (f"the revoke answered 'lease not found' {self.now() - rec.granted_at:.2f}s "
                                 "after the grant")
                return member
            except Exception:
                self._record(n, "revoke", t, False)
                unknown = True
                member = (member + 1) % len(self.clients)
                if self.stop.is_set():
                    tries_after_stop += 1
                    if tries_after_stop >= 3:
                        return member
                time.sleep(0.02)

    def report(self, history: list) -> dict:
        leases = [rec for recs in self.leases for rec in recs]
        problems = lease_violations(leases, history)

        def latency(kind: str) -> list[float]:
            if kind == "put":
                return sorted(op.ret - op.invoke for ops in self.ops for op in ops if op.ok and op.client >= 0)
            return sorted(b - a for cs in self.lease_calls for k, a, b, ok in cs if ok and k == kind)

        out: dict = {
            "leases_granted": len(leases),
            "lease_puts_acked": sum(1 for r in leases if r.put is not None and r.put.ok),
            "leases_revoked": sum(1 for r in leases if r.revoke == "acked"),
            "leases_gone": sum(1 for r in leases if r.revoke == "gone"),
            "leases_unconfirmed": sum(1 for r in leases if not r.revoke),
            "lease_ttl_s": self.ttl,
        }
        for kind in ("grant", "put", "revoke"):
            lat = latency(kind)
            out[f"{kind}_p50_ms"] = ms(pct(lat, 0.5))
            out[f"{kind}_p99_ms"] = ms(pct(lat, 0.99))
        out.update({"lease_violations": len(problems), "lease_problems": problems[:10],
                    "workload_violations": len(problems)})
        return out
