"""Fuzzing the JSON gateway (--listen-client-http-urls): etcd's paths and
others, every method, bodies of random bytes, random JSON, JSON of the wrong
shape, deep nesting, numbers out of range, bad base64 and several objects in
one body.

Every answer must be HTTP; a 5xx only as a gRPC error the gateway maps
(grpc-gateway's JSON body with its code: etcd's election answers "no leader"
with Unknown, 500), never the HTTP server's own "500 Internal Server Error";
a 4xx for what the gateway refuses. The member logs no traceback, and at the
end it still serves a put and a linearizable read through the gateway.
"""

from __future__ import annotations

import http.client
import json

import pytest
from fuzz_helpers import fuzz_settings  # tests/fuzz is on sys.path under pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.fuzz import DebugLogCluster, LogWatch, _http_benign
from raftkv.addresses import free_ports
from raftkv.server.gateway import ROUTES

HOST = "127.0.0.1"
TIMEOUT = 3.0  # a streaming route (watch, keep-alive, observe) or a waiting lock may answer slowly or never


@pytest.fixture(scope="module")
def member(module_clusters, tmp_path_factory):
    (port,) = free_ports(1)
    cluster = DebugLogCluster(1, str(tmp_path_factory.mktemp("gateway-fuzz")),
                              extra_args=["--listen-client-http-urls", f"http://{HOST}:{port}"])
    module_clusters.append(cluster)
    cluster.start()
    yield cluster, port, LogWatch(cluster.members[0].log_path, ignore=_http_benign)
    process = cluster.members[0].process
    cluster.stop()
    assert process.returncode == 0, f"the member did not stop cleanly on SIGTERM (exit {process.returncode})"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["key", "range_end", "value", "ID", "TTL", "lease", "revision", "limit", "sort_order",
                         "create_request", "cancel_request", "compare", "success", "failure", "request_put",
                         "target", "result", "name", "peerURLs", "action", "alarm", "x"]) | st.text(max_size=8),
        children, max_size=5),
    max_leaves=12)

bodies = st.one_of(
    st.binary(max_size=300),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(json_values, min_size=2, max_size=3).map(lambda vs: b"".join(json.dumps(v).encode() for v in vs)),
    st.sampled_from([b"[" * 100_000, b'{"key":' * 5000, b'{"key": "!!notbase64"}', b'{"limit": "1e400"}',
                     b'{"key": "YQ==", "revision": "99999999999999999999999"}', b"\xff\xfe{}", b'{"sort_order": 99}',
                     b'{"create_request": {"key": "YQ==", "filters": ["NOPE"]}}']))

paths = st.one_of(st.sampled_from(sorted(ROUTES)), st.sampled_from(["/", "/v3", "/v3/kv", "/health", "/version",
                                                                    "/metrics", "/v3/kv/range/x", "/%zz"]))


def exchange(port: int, method: str, path: str, body: bytes) -> tuple[int | None, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=TIMEOUT)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        try:
            data = response.read()
        except TimeoutError:
            data = b"(a stream still open)"
        return response.status, data
    except TimeoutError:
        return None, b""  # no answer yet: a lock or a campaign that waits
    finally:
        conn.close()


@pytest.mark.timeout(300)
@fuzz_settings(300, shrink=False)
@given(method=st.sampled_from(["POST", "POST", "POST", "GET", "PUT", "DELETE"]), path=paths, body=bodies)
def test_requests(member, method, path, body):
    _, port, log = member
    status, data = exchange(port, method, path, body)
    problems = log.problems()
    if status is not None and status >= 500:
        try:
            answer = json.loads(data.splitlines()[0])
            mapped = isinstance(answer, dict) and isinstance(answer.get("code"), int)
        except ValueError:
            mapped = False
        if not mapped:
            problems.append(f"answered {status} without a gRPC error: {data[:300]!r}")
    assert not problems, f"{method} {path} {body[:200]!r}:\n  " + "\n  ".join(problems)


@pytest.mark.timeout(60)
def test_member_survived(member):
    _, port, log = member
    status, data = exchange(port, "POST", "/v3/kv/put", b'{"key": "c3Vydml2ZWQ=", "value": "eWVz"}')
    assert status == 200, data
    status, data = exchange(port, "POST", "/v3/kv/range", b'{"key": "c3Vydml2ZWQ="}')
    assert status == 200 and json.loads(data)["kvs"][0]["value"] == "eWVz", data
    assert not log.problems()
