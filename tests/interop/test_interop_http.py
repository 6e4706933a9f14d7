"""etcd's client port also speaks HTTP/1.1: /version, /health, /metrics and the JSON gRPC
gateway (/v3/...).  Health probes (Kubernetes', load balancers', curl in scripts) and
`etcdctl check datascale` use them.  Compared with a real etcd through a stdlib HTTP client."""

from __future__ import annotations

import base64
import http.client
import json
import urllib.error
import urllib.request

import pytest

from interop_tools import Session, run_each

pytestmark = pytest.mark.timeout(60)


def http_call(endpoint: str, path: str, body: dict | None = None) -> tuple[int | str, str]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://{endpoint}{path}", data=data,
                                 method="GET" if body is None else "POST")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        # raftkv's gRPC-only port answers HTTP/1.1 with an HTTP/2 SETTINGS frame: BadStatusLine
        return "no HTTP answer", type(getattr(e, "reason", e)).__name__


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def http_answers(server) -> dict:
    ep = server.endpoints[0]
    out = {}
    status, body = http_call(ep, "/version")
    out["/version"] = (status, sorted(json.loads(body)) if status == 200 else body)
    status, body = http_call(ep, "/health")
    out["/health"] = (status, json.loads(body) if status == 200 else body)
    status, body = http_call(ep, "/metrics")
    out["/metrics has etcd_server_has_leader"] = (status, "etcd_server_has_leader" in body)
    status, body = http_call(ep, "/v3/kv/put", {"key": b64("gw"), "value": b64("via gateway")})
    out["/v3/kv/put"] = status
    status, body = http_call(ep, "/v3/kv/range", {"key": b64("gw")})
    if status == 200:
        doc = json.loads(body)
        out["/v3/kv/range"] = (status, doc["header"]["revision"], doc.get("kvs"))
    else:
        out["/v3/kv/range"] = (status, body)
    return out


def test_the_client_port_is_grpc_only(raftkv_server):
    """README, "Differences from etcd": etcd 3.4 also answers HTTP/1.1 on its
    client port; raftkv's answers it with an HTTP/2 SETTINGS frame, so no
    HTTP client gets an answer there (raftkv serves /version, /health,
    /metrics and the gateway on --listen-client-http-urls, as etcd 3.5 can:
    tests/interop/test_interop_gateway.py compares those with etcd's)."""
    got = http_answers(raftkv_server)
    assert got == {
        "/version": ("no HTTP answer", "BadStatusLine"),
        "/health": ("no HTTP answer", "BadStatusLine"),
        "/metrics has etcd_server_has_leader": ("no HTTP answer", False),
        "/v3/kv/put": "no HTTP answer",
        "/v3/kv/range": ("no HTTP answer", "BadStatusLine"),
    }


def test_http_endpoints_etcd(etcd_server):
    """What etcd answers on its client port (raftkv answers it on --listen-client-http-urls)."""
    got = http_answers(etcd_server)
    assert got["/version"] == (200, ["etcdcluster", "etcdserver"])
    assert got["/health"] == (200, {"health": "true"})
    assert got["/metrics has etcd_server_has_leader"] == (200, True)
    assert got["/v3/kv/put"] == 200
    assert got["/v3/kv/range"][0] == 200 and got["/v3/kv/range"][1] == "2"


@pytest.mark.timeout(180)
def test_check_datascale_needs_http_on_the_client_port(pair):
    """`etcdctl check datascale` reads the server's memory use from
    http://<endpoint>/metrics: it passes on etcd and, the client port being
    gRPC only (README, "Differences from etcd"), fails on raftkv with etcd's
    own words."""
    def scenario(s: Session):
        r = s.ctl("check", "datascale", "--load=s", "--auto-compact", "--auto-defrag",
                  timeout=150, record=False)
        s.note("rc", r.rc)
        s.note("verdicts", [line for line in (r.out + r.err).replace("\r", "\n").splitlines()
                            if line.startswith(("PASS", "FAIL", "Error"))])
    etcd, raftkv = run_each(pair, scenario)
    assert [step.out for step in etcd.steps][0] == "0\n"
    assert "PASS" in etcd.steps[1].out
    assert [step.out for step in raftkv.steps] == [
        "1\n", "['FAIL: Could not read process_resident_memory_bytes before the put operations.']\n"]


# What etcd's own alerting rules and dashboards (etcd-mixin) read
ALERTING_METRICS = (
    "etcd_server_has_leader", "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_failed_total", "etcd_server_proposals_pending",
    "etcd_server_proposals_committed_total", "etcd_server_proposals_applied_total",
    "etcd_disk_wal_fsync_duration_seconds_bucket", "etcd_disk_backend_commit_duration_seconds_bucket",
    "etcd_mvcc_db_total_size_in_bytes", "etcd_mvcc_db_total_size_in_use_in_bytes",
    "etcd_server_quota_backend_bytes",
    "grpc_server_started_total", "grpc_server_handled_total", "process_resident_memory_bytes",
)

METRICS_ANSWERS: dict[str, dict] = {}


def metrics_answers(tmp_path) -> dict:
    """/health and /metrics on a --listen-metrics-urls listener of each kind (cached per run)."""
    if METRICS_ANSWERS:
        return METRICS_ANSWERS
    import os

    from raftkv.cluster.local import free_ports

    from interop_tools import ETCD_BIN, ETCD_MISSING, EtcdServer, RaftkvServer

    if not os.path.exists(ETCD_BIN):
        pytest.skip(ETCD_MISSING)
    for kind, cls in (("etcd", EtcdServer), ("raftkv", RaftkvServer)):
        (port,) = free_ports(1)
        server = cls(tmp_path / kind, extra_args=[f"--listen-metrics-urls=http://127.0.0.1:{port}"])
        try:
            server.wait_ready()
            server.ctl("put", "a", "1").ok()
            ep = f"127.0.0.1:{port}"
            got = {}
            status, body = http_call(ep, "/health")
            got["/health"] = (status, json.loads(body) if status == 200 else body)
            status, body = http_call(ep, "/metrics")
            names = {line.split("{")[0].split(" ")[0] for line in body.splitlines()
                     if line and not line.startswith("#")}
            got["/metrics status"] = status
            got["alerting metrics present"] = sorted(m for m in ALERTING_METRICS if m in names)
            METRICS_ANSWERS[kind] = got
        finally:
            server.stop()
    return METRICS_ANSWERS


def test_metrics_listener_health(tmp_path):
    """``--listen-metrics-urls`` (etcd's flag; raftkv takes it too): /health and /metrics there."""
    answers = metrics_answers(tmp_path)
    assert answers["etcd"]["/health"] == (200, {"health": "true"}), answers
    assert answers["etcd"]["alerting metrics present"] == sorted(ALERTING_METRICS), answers
    assert answers["raftkv"]["/health"] == answers["etcd"]["/health"]
    assert answers["raftkv"]["/metrics status"] == 200


def test_metrics_listener_alerting_metrics(tmp_path):
    """Every metric etcd's own alerts and dashboards (etcd-mixin) read, but the
    backend commit durations: raftkv has no backend that commits (README)."""
    answers = metrics_answers(tmp_path)
    missing = sorted(set(answers["etcd"]["alerting metrics present"])
                     - set(answers["raftkv"]["alerting metrics present"]))
    assert missing == ["etcd_disk_backend_commit_duration_seconds_bucket"], f"raftkv's /metrics lacks: {missing}"
