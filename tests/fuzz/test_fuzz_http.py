"""Fuzzing the HTTP listener of --listen-metrics-urls (/health and /metrics).

One real member for the module, logging at DEBUG: the listener logs a request
that raised only at that level (tracebacks of clients that went away, a
broken pipe or a reset, are not findings and are skipped).

Hypothesis sends well-formed requests whose answers are known (/health: 200
for GET, 405 for any other method; /metrics: 200; anything else: 404),
random methods, paths, versions, headers and bodies, malformed request lines
and raw garbage, request lines and header blocks over the limits, pipelined
requests, and requests dribbled in pieces. Every answer must be HTTP, never a
5xx but /health's 503, and a well-formed request must get its answer. Between
examples and at the end, with dozens of slowloris connections holding part
of a request, the member still answers /health and /metrics, and its log
holds no traceback.

The judging is bench/fuzz.py's (HttpFuzzer); ``python -m bench fuzz --target
http`` runs it for longer.
"""

from __future__ import annotations

import pytest
from hypothesis import given

from bench.fuzz import HttpFuzzer, Slowloris, _http_benign, http_sends, start_http_member

from fuzz_helpers import fuzz_settings, whole_log_problems  # tests/fuzz is on sys.path under pytest

HOST = "127.0.0.1"

# the examples with 70 kB request lines make hypothesis warn about their size
pytestmark = pytest.mark.filterwarnings("ignore:Generating overly large repr")


@pytest.fixture(scope="module")
def member(module_clusters, tmp_path_factory):
    cluster, port = start_http_member(str(tmp_path_factory.mktemp("http-fuzz")))
    module_clusters.append(cluster)
    yield cluster, port
    process = cluster.members[0].process
    cluster.stop()
    assert process.returncode == 0, f"the member did not stop cleanly on SIGTERM (exit {process.returncode})"


@pytest.fixture(scope="module")
def fuzzer(member):
    cluster, port = member
    return HttpFuzzer(HOST, port, cluster.members[0].log_path)


@pytest.mark.timeout(240)
@fuzz_settings(300)
@given(send=http_sends())
def test_requests(fuzzer, send):
    problems = fuzzer.run(send)
    assert not problems, f"{send!r}:\n  " + "\n  ".join(problems)


@pytest.mark.timeout(60)
def test_answers_while_slowloris_connections_hang(member, fuzzer):
    _, port = member
    with Slowloris(HOST, port, 64):
        for _ in range(5):
            assert not fuzzer.health()


def test_member_survived(member, fuzzer):
    """Last: still running, /health and /metrics answer, no traceback in the whole log."""
    cluster, _ = member
    assert cluster.members[0].running
    assert not fuzzer.health()
    assert not whole_log_problems(cluster, ignore=_http_benign)
