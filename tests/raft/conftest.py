"""Fixtures for the cluster fault tests: every cluster is stopped when its test
ends, pass or fail, and a failing test's report carries the tail of every
member's log. The helpers themselves are in fault_helpers.py."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from raftkv.cluster.local import LocalCluster

from fault_helpers import log_tails  # tests/raft is on sys.path under pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
    if report.failed and call.when in ("call", "teardown"):
        for cluster in getattr(item, "_raftkv_clusters", []):
            report.sections.append(("raftkv member logs", log_tails(cluster)))


@pytest.fixture
def make_cluster(request, tmp_path):
    """make_cluster(size=3, extra_args=..., env=..., member_env=..., start=True) -> LocalCluster.

    Data and logs live under tmp_path; every cluster is stopped at teardown.
    """
    clusters: list[LocalCluster] = []
    request.node._raftkv_clusters = clusters

    def make(size: int = 3, *, extra_args: list[str] | None = None, env: dict | None = None,
             member_env: Callable[[int], dict] | None = None, start: bool = True,
             name: str = "cluster") -> LocalCluster:
        cluster = LocalCluster(size, str(tmp_path / f"{name}{len(clusters)}"),
                               extra_args=extra_args, env=env)
        clusters.append(cluster)
        if member_env is not None:
            for i, member in enumerate(cluster.members):
                member.extra_env.update(member_env(i))
        if start:
            cluster.start()
        return cluster

    try:
        yield make
    finally:
        for cluster in clusters:
            cluster.stop()


