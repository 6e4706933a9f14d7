"""Fixtures for the server tests: real ``raftkv serve`` processes on loopback.

``member`` is one single-member cluster shared by a test module (with
/metrics and /health on a port of its own); ``make_cluster`` makes clusters
that belong to one test. Every cluster is stopped when its owner ends, pass
or fail, and a failing test's report carries the members' log tails.
"""

from __future__ import annotations

from dataclasses import dataclass

import grpc
import pytest

from raftkv.cluster.local import LocalCluster

from server_helpers import free_port, log_tails  # noqa: E402  (this folder is on sys.path)


@dataclass
class RunningMember:
    cluster: LocalCluster
    metrics_url: str

    @property
    def endpoint(self) -> str:
        return self.cluster.members[0].endpoint

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(self.endpoint)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("call", "teardown"):
        clusters = list(getattr(item, "_raftkv_clusters", []))
        shared = item.funcargs.get("member") if hasattr(item, "funcargs") else None
        if isinstance(shared, RunningMember):
            clusters.append(shared.cluster)
        for cluster in clusters:
            report.sections.append(("raftkv member logs", log_tails(cluster)))


@pytest.fixture(scope="module")
def member(tmp_path_factory):
    """A single-member cluster for the whole module, serving /metrics and /health."""
    port = free_port()
    metrics_url = f"http://127.0.0.1:{port}"
    cluster = LocalCluster(1, str(tmp_path_factory.mktemp("member")),
                           extra_args=["--listen-metrics-urls", metrics_url])
    try:
        cluster.start()
        yield RunningMember(cluster, metrics_url)
    finally:
        process = cluster.members[0].process
        cluster.stop()
    # whatever the module did to it, the member still stops cleanly on SIGTERM
    assert process.returncode == 0, f"member exited with {process.returncode}:\n{log_tails(cluster)}"


@pytest.fixture
def channel(member):
    ch = member.channel()
    try:
        yield ch
    finally:
        ch.close()


@pytest.fixture
def make_cluster(request, tmp_path):
    """make_cluster(size, extra_args=..., start=True) -> LocalCluster, stopped at teardown."""
    clusters: list[LocalCluster] = []
    request.node._raftkv_clusters = clusters

    def make(size: int = 1, *, extra_args: list[str] | None = None, start: bool = True) -> LocalCluster:
        cluster = LocalCluster(size, str(tmp_path / f"cluster{len(clusters)}"), extra_args=extra_args)
        clusters.append(cluster)
        if start:
            cluster.start()
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.stop()
