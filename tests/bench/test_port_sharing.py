"""bench.port_sharing: the first-bytes front relays gRPC, measured beside the direct path."""

from __future__ import annotations

import pytest

from bench.port_sharing import measure


@pytest.mark.timeout(120)
def test_a_short_run_answers_on_both_paths():
    result = measure(nodes=1, clients=2, seconds=0.5, warmup=0.2, rounds=1)
    assert sorted((p["system"], p["op"]) for p in result["phases"]) == [
        ("direct", "get"), ("direct", "put"), ("front", "get"), ("front", "put")]
    for phase in result["phases"]:
        assert phase["ops"] > 0 and phase["errors"] == 0, phase
    assert set(result["summary"]) == {"put", "get"}
