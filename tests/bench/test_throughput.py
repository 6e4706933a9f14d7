"""bench.throughput: the table, and one short real run on raftkv."""

from __future__ import annotations

import pytest

from bench.throughput import PhaseResult, measure, table


def _result(system: str, op: str, clients: int, ops_per_s: float) -> PhaseResult:
    return PhaseResult(system=system, op=op, clients=clients, seconds=1.0, ops=int(ops_per_s), errors=0,
                       ops_per_s=ops_per_s, p50_ms=1.0, p99_ms=2.0, first_error=None)


def test_table_puts_each_op_and_client_count_side_by_side():
    rows = table([_result("raftkv", "put", 64, 800.0), _result("etcd", "put", 64, 1000.0),
                  _result("raftkv", "get", 64, 900.0), _result("etcd", "get", 64, 1800.0)]).splitlines()
    assert rows[2].startswith("| put | 64 | 800.0 | 1000.0 | 0.80 |")
    assert rows[3].startswith("| get | 64 | 900.0 | 1800.0 | 0.50 |")


@pytest.mark.timeout(120)
def test_a_short_run_on_one_raftkv_member_is_answered():
    results = measure("raftkv", 1, [2], seconds=1.0, warmup=0.2, keys=10)
    assert [(r.op, r.clients) for r in results] == [("put", 2), ("get", 2)]
    for r in results:
        assert r.ops > 0 and r.errors == 0, r
        assert r.p99_ms is not None and r.p99_ms >= r.p50_ms
