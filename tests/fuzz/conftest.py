"""Fixtures for the fuzz tests: real ``raftkv serve`` members, started once per module.

The generators and the judges are bench/fuzz.py's (``python -m bench fuzz``
runs them for hours); here they run for a few hundred examples each (see
fuzz_helpers.py). A failing test's report carries the tail of every member's log.
"""

from __future__ import annotations

import pytest

from fuzz_helpers import log_tails  # tests/fuzz is on sys.path under pytest
from raftkv.cluster.local import LocalCluster

@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("call", "teardown"):
        # the test's own clusters, else those its module shares
        clusters = getattr(item, "_raftkv_clusters", None) or list(getattr(item.module, "_raftkv_clusters", []))
        if clusters:
            report.sections.append(("raftkv member logs", log_tails(clusters)))


@pytest.fixture
def test_clusters(request):
    """Clusters one test starts; stopped at its end, their logs shown when it fails."""
    clusters: list[LocalCluster] = []
    request.node._raftkv_clusters = clusters
    try:
        yield clusters
    finally:
        for cluster in clusters:
            cluster.stop()


@pytest.fixture(scope="module")
def module_clusters(request):
    """Clusters a module starts; stopped at its end, their logs shown when a test fails."""
    clusters: list[LocalCluster] = []
    request.module._raftkv_clusters = clusters
    try:
        yield clusters
    finally:
        for cluster in clusters:
            cluster.stop()
