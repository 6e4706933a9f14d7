"""/health and /metrics on --listen-metrics-urls, and the gRPC health service."""

from __future__ import annotations

import threading
import urllib.error
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv.cluster.local import LocalCluster, MemberProcess

from server_helpers import free_port, wait_until


def fetch(url: str, method: str = "GET", timeout: float = 10.0) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def samples(metrics_url: str) -> dict[tuple[str, frozenset], float]:
    status, _, body = fetch(metrics_url + "/metrics")
    assert status == 200
    found = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def grpc_labels(method: str, service: str = "etcdserverpb.KV", kind: str = "unary", **extra) -> frozenset:
    return frozenset({"grpc_method": method, "grpc_service": service, "grpc_type": kind, **extra}.items())


@pytest.mark.timeout(60)
def test_health_as_etcd(member):
    status, headers, body = fetch(member.metrics_url + "/health")
    assert (status, body) == (200, b'{"health":"true"}')
    assert headers["Content-Type"] == "text/plain; charset=utf-8"
    status, headers, body = fetch(member.metrics_url + "/health", method="POST")
    assert (status, body, headers["Allow"]) == (405, b"Method Not Allowed\n", "GET")
    status, _, body = fetch(member.metrics_url + "/nothing-here")
    assert (status, body) == (404, b"404 page not found\n")
    found = samples(member.metrics_url)
    assert found[("etcd_server_health_success_total", frozenset())] >= 1


@pytest.mark.timeout(60)
def test_grpc_health_service(channel):
    response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.timeout(60)
def test_metrics_count_and_time_grpc_calls(member, channel):
    before = samples(member.metrics_url)
    kv = rpc_pb2_grpc.KVStub(channel)
    for i in range(5):
        kv.Put(rpc_pb2.PutRequest(key=b"metrics/%d" % i, value=b"v"), timeout=10)
    with pytest.raises(grpc.RpcError):
        kv.Range(rpc_pb2.RangeRequest(key=b"metrics/0", revision=10**9), timeout=10)
    after = samples(member.metrics_url)

    def grew(name: str, labels: frozenset) -> float:
        return after.get((name, labels), 0) - before.get((name, labels), 0)

    put = grpc_labels("Put")
    assert grew("grpc_server_started_total", put) == 5
    assert grew("grpc_server_handled_total", grpc_labels("Put", grpc_code="OK")) == 5
    assert grew("grpc_server_msg_received_total", put) == 5
    assert grew("grpc_server_msg_sent_total", put) == 5
    assert grew("grpc_server_handling_seconds_count", put) == 5
    assert after[("grpc_server_handling_seconds_bucket", grpc_labels("Put", le="+Inf"))] >= 5
    assert grew("grpc_server_handled_total", grpc_labels("Range", grpc_code="OutOfRange")) == 1

    assert after[("etcd_server_has_leader", frozenset())] == 1
    assert after[("etcd_server_is_leader", frozenset())] == 1
    assert after[("raftkv_server_raft_term", frozenset())] >= 1
    assert after[("etcd_server_proposals_applied_total", frozenset())] >= 5
    assert after[("etcd_server_proposals_committed_total", frozenset())] >= \
        after[("etcd_server_proposals_applied_total", frozenset())] - 1
    assert after[("etcd_debugging_mvcc_current_revision", frozenset())] >= 6
    leader_info = [labels for (name, labels) in after if name == "raftkv_server_leader_info"]
    assert len(leader_info) == 1
    assert ("etcd_server_version", frozenset({"server_version": "3.4.23"}.items())) in after


@pytest.mark.timeout(60)
def test_metrics_count_watchers_and_stream_messages(member, channel):
    base = samples(member.metrics_url)[("etcd_debugging_mvcc_watcher_total", frozenset())]
    watch = grpc_labels("Watch", service="etcdserverpb.Watch", kind="bidi_stream")
    def handled() -> float:  # every code: a cancel that races the end of the request stream counts as OK
        return sum(value for (name, labels), value in samples(member.metrics_url).items()
                   if name == "grpc_server_handled_total" and watch <= labels)

    handled_before = handled()
    more = threading.Event()  # the request stream stays open until the end: no half-close

    def request_stream():
        yield rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(key=b"metrics/w"))
        more.wait(30)

    stream = rpc_pb2_grpc.WatchStub(channel).Watch(request_stream(), timeout=30)
    try:
        assert next(stream).created
        wait_until(lambda: samples(member.metrics_url)[("etcd_debugging_mvcc_watcher_total", frozenset())]
                   == base + 1, timeout=10, what="the watcher is counted")
        found = samples(member.metrics_url)
        assert found[("grpc_server_msg_received_total", watch)] >= 1
        assert found[("grpc_server_msg_sent_total", watch)] >= 1
        stream.cancel()
        wait_until(lambda: samples(member.metrics_url)[("etcd_debugging_mvcc_watcher_total", frozenset())]
                   == base, timeout=10, what="the watcher is gone")
        wait_until(lambda: handled() == handled_before + 1, timeout=10, what="the ended stream is counted")
    finally:
        stream.cancel()
        more.set()


class _MetricsCluster(LocalCluster):
    """Every member with /health and /metrics on a port of its own."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.metrics_urls = {m.name: f"http://127.0.0.1:{free_port()}" for m in self.members}

    def command(self, member: MemberProcess) -> list[str]:
        return [*super().command(member), "--listen-metrics-urls", self.metrics_urls[member.name]]


@pytest.mark.timeout(90)
def test_health_fails_without_a_leader(tmp_path):
    cluster = _MetricsCluster(3, str(tmp_path / "cluster"))
    try:
        cluster.start()
        leader = cluster.leader_index()
        for i in range(3):
            url = cluster.metrics_urls[cluster.members[i].name]
            assert fetch(url + "/health")[2] == b'{"health":"true"}'
            found = samples(url)
            assert found[("etcd_server_is_leader", frozenset())] == (1 if i == leader else 0)
            assert found[("etcd_server_has_leader", frozenset())] == 1
        survivor = (leader + 1) % 3
        for i in range(3):
            if i != survivor:
                cluster.kill(i)
        url = cluster.metrics_urls[cluster.members[survivor].name]

        def unhealthy():
            status, headers, body = fetch(url + "/health", timeout=15)
            return status == 503 and body == b'{"health":"false"}\n' and headers
        headers = wait_until(unhealthy, timeout=30, what="/health reports the lost quorum")
        assert headers["X-Content-Type-Options"] == "nosniff"
        assert samples(url)[("etcd_server_health_failures_total", frozenset())] >= 1
    finally:
        cluster.stop()


@pytest.mark.timeout(60)
def test_a_member_that_never_saw_a_leader(tmp_path):
    cluster = _MetricsCluster(3, str(tmp_path / "cluster"))
    try:
        cluster.start_member(0)  # the other two never come: no quorum, no leader
        url = cluster.metrics_urls[cluster.members[0].name]
        status, _, body = wait_until(lambda: fetch(url + "/health"), timeout=20, what="/health answers")
        assert (status, body) == (503, b'{"health":"false"}\n')
        found = samples(url)
        assert found[("etcd_server_has_leader", frozenset())] == 0
        assert found[("etcd_server_is_leader", frozenset())] == 0
        with grpc.insecure_channel(cluster.members[0].endpoint) as ch:
            reply = rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=10)
        assert (reply.leader, list(reply.errors)) == (0, ["etcdserver: no leader"])
    finally:
        cluster.stop()
