"""The lease-churn, watch-fanout and objects workloads: their checks flag
broken inputs, and a short run of each under kill -9 of the leader passes
every check (raftkv; lease-churn and objects on etcd too)."""

from __future__ import annotations

import math
import os

import pytest

from bench.checks import Ev
from bench.cli import passed, table
from bench.harness import Scenario, run_scenario
from bench.lease_churn import LeaseRecord, lease_violations
from bench.linearizability import Op
from bench.object_load import Listed, Seen, informer_violations

HAS_ETCD = os.path.exists("/usr/bin/etcd")


# ---- lease-churn's check -------------------------------------------------------

def _lease(key: str, put_revision: int, revoke: str = "acked", put_ok: bool = True) -> LeaseRecord:
    put = Op(0, "put", key, 1.0, 1.1 if put_ok else math.inf, value="v", ok=put_ok, revision=put_revision)
    return LeaseRecord(0, key, 0x10, 1.0, put=put, revoke=revoke)


def test_revoked_lease_with_its_key_deleted_is_fine():
    history = [Ev(5, "/bench/lease/0/1", "PUT", "v"), Ev(6, "/bench/lease/0/1", "DELETE")]
    assert lease_violations([_lease("/bench/lease/0/1", 5)], history) == []


def test_revoked_lease_whose_key_has_no_delete_is_flagged():
    history = [Ev(5, "/bench/lease/0/1", "PUT", "v")]
    problems = lease_violations([_lease("/bench/lease/0/1", 5)], history)
    assert any("no DELETE" in p for p in problems)
    assert any("alive at the end" in p for p in problems)


def test_delete_before_the_put_does_not_count():
    history = [Ev(4, "/bench/lease/0/1", "DELETE"), Ev(5, "/bench/lease/0/1", "PUT", "v")]
    assert any("no DELETE" in p for p in lease_violations([_lease("/bench/lease/0/1", 5)], history))


def test_unrevoked_lease_is_not_judged_but_an_unknown_put_that_happened_is():
    history = [Ev(5, "/bench/lease/0/1", "PUT", "v"), Ev(7, "/bench/lease/0/2", "PUT", "v")]
    assert lease_violations([_lease("/bench/lease/0/1", 5, revoke="")], history) == []
    # the put's outcome was unknown, the revoke answered: the key must go
    problems = lease_violations([_lease("/bench/lease/0/2", 0, revoke="gone", put_ok=False)], history)
    assert any("no DELETE after its put at revision 7" in p for p in problems)
    # an unknown put that never happened needs no DELETE
    assert lease_violations([_lease("/bench/lease/0/3", 0, revoke="gone", put_ok=False)], history) == []


def test_lease_gone_before_its_ttl_is_flagged():
    rec = _lease("/bench/lease/0/1", 5)
    rec.early = "the revoke answered 'lease not found' 0.20s after the grant"
    history = [Ev(5, "/bench/lease/0/1", "PUT", "v"), Ev(6, "/bench/lease/0/1", "DELETE")]
    assert any("before its TTL" in p for p in lease_violations([rec], history))


# ---- objects' informer check ----------------------------------------------------

def _seen(type_: str, name: str, rv: int, app: str = "a") -> Seen:
    return Seen(0.0, type_, name, rv, {"app": app, "tier": "web"})


def test_consistent_informer_passes():
    log = [Listed(0.0, 10, {"x": 9}), _seen("MODIFIED", "x", 11), _seen("ADDED", "y", 12),
           _seen("DELETED", "x", 14), Listed(0.0, 20, {"y": 12}), _seen("MODIFIED", "y", 21)]
    assert informer_violations("app=a", log, {"y": 21}) == []


def test_informer_cache_that_differs_from_the_list_is_flagged():
    log = [Listed(0.0, 10, {"x": 9}), _seen("ADDED", "y", 12)]
    problems = informer_violations("app=a", log, {"x": 9, "y": 13, "z": 15})
    assert len(problems) == 1 and "differs from a fresh list" in problems[0]
    assert "missing ['z']" in problems[0] and "('y', 12, 13)" in problems[0]
    assert any("extra ['x']" in p for p in informer_violations("app=a", log, {"y": 12}))


def test_duplicate_and_reordered_resource_versions_are_flagged():
    log = [Listed(0.0, 10, {}), _seen("ADDED", "x", 11), _seen("MODIFIED", "x", 11)]
    assert any("duplicate MODIFIED x at resourceVersion 11" in p for p in informer_violations("app=a", log, {"x": 11}))
    log = [Listed(0.0, 10, {}), _seen("ADDED", "x", 13), _seen("ADDED", "y", 12)]
    assert any("at resourceVersion 12 after 13" in p
               for p in informer_violations("app=a", log, {"x": 13, "y": 12}))
    # an event at or before the list's resourceVersion is out of order too
    log = [Listed(0.0, 10, {"x": 9}), _seen("MODIFIED", "x", 9)]
    assert any("after 10" in p for p in informer_violations("app=a", log, {"x": 9}))


def test_impossible_transitions_and_foreign_objects_are_flagged():
    log = [Listed(0.0, 10, {"x": 9}), _seen("ADDED", "x", 11), _seen("DELETED", "y", 12),
           _seen("MODIFIED", "z", 13), _seen("ADDED", "w", 14, app="b")]
    problems = informer_violations("app=a", log, {"x": 11, "z": 13, "w": 14})
    assert any("ADDED x@11 but it has x@9" in p for p in problems)
    assert any("DELETED y@12 of an object it does not have" in p for p in problems)
    assert any("MODIFIED z@13 of an object it does not have" in p for p in problems)
    assert any("ADDED w@14 does not match" in p for p in problems)
    assert any("no final list" in p for p in informer_violations("app=a", [Listed(0.0, 1, {})], None))


# ---- plumbing ------------------------------------------------------------------

def test_watch_fanout_defaults_to_many_watchers_and_tables_show_workload_rows():
    assert Scenario(workload="watch-fanout").watchers == 200 and Scenario(workload="put").watchers == 2
    assert Scenario(workload="watch-fanout", watchers=7).watchers == 7
    a = {"workload": "objects", "fault": "none", "nodes": 3, "clients": 8, "list_p99_ms": 4.0}
    assert "| list_p99_ms | 4.0 | 2.0 | 2.00 |" in table(a, dict(a, list_p99_ms=2.0))


# ---- real runs -----------------------------------------------------------------

def _run(tmp_path, system: str, workload: str, **kw) -> dict:
    s = Scenario(system=system, nodes=3, workload=workload, clients=kw.pop("clients", 6), keys=8,
                 duration=kw.pop("duration", 5.0), fault="kill-leader", fault_at=1.5, fault_delay=1.5,
                 watchers=kw.pop("watchers", 1), **kw)
    r = run_scenario(s, quiet=True, keep_dir=str(tmp_path))
    assert passed(r), {k: r.get(k) for k in ("linearizability", "lost_examples", "watch_problems", "convergence",
                                             "lease_problems", "object_problems", "faults")}
    (fault,) = r["faults"]
    assert fault["first_success_after"] is not None, fault
    return r


@pytest.mark.timeout(120)
def test_lease_churn_raftkv_kill_leader(tmp_path):
    r = _run(tmp_path, "raftkv", "lease-churn")
    assert r["leases_revoked"] > 50 and r["lease_violations"] == 0
    assert r["acked_writes"] == r["lease_puts_acked"] > 50     # the puts are checked as acked writes
    assert r["history_events"] > r["leases_revoked"]          # PUTs and the revokes' DELETEs


@pytest.mark.timeout(120)
def test_watch_fanout_raftkv_kill_leader(tmp_path):
    r = _run(tmp_path, "raftkv", "watch-fanout", watchers=30)
    assert r["watchers"] == 30 and r["watch_violations"] == 0
    assert r["watch_resumes"] > 0            # the killed leader's watchers moved on
    assert r["watch_events_delivered"] >= 30 * r["acked_writes"]
    assert r["watch_events_per_s"] > 0 and r["watch_delay_p99_ms"] is not None


@pytest.mark.timeout(120)
def test_objects_raftkv_kill_leader(tmp_path):
    r = _run(tmp_path, "raftkv", "objects")
    assert r["creates"] > 20 and r["lists"] > 0 and r["informer_events"] > 0
    assert r["informer_rewatches"] > 0       # the killed leader's informers watched again elsewhere
    assert r["workload_violations"] == 0 and r["list_p99_ms"] is not None


@pytest.mark.skipif(not HAS_ETCD, reason="etcd-server not installed")
@pytest.mark.timeout(120)
def test_lease_churn_etcd_kill_leader(tmp_path):
    r = _run(tmp_path, "etcd", "lease-churn", duration=4.0)
    assert r["leases_revoked"] > 50 and r["lease_violations"] == 0


@pytest.mark.skipif(not HAS_ETCD, reason="etcd-server not installed")
@pytest.mark.timeout(120)
def test_objects_etcd_kill_leader(tmp_path):
    r = _run(tmp_path, "etcd", "objects", duration=4.0)
    assert r["informer_events"] > 0 and r["workload_violations"] == 0
