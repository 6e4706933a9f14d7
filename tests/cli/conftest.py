"""Fixtures for the CLI tests: real ``raftkv serve`` processes on loopback.

``member`` is one single-member cluster shared by the session (tests use key
prefixes of their own); ``cluster3`` is a 3-member cluster shared by a
module. Every cluster is stopped when its owner ends, pass or fail, and a
failing test's report carries the members' log tails.
"""

from __future__ import annotations

import os
import sys
import uuid
from dataclasses import dataclass

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from cli_helpers import invoke, log_tails  # noqa: E402

from raftkv.cluster.local import LocalCluster  # noqa: E402


@dataclass
class Member:
    cluster: LocalCluster

    @property
    def endpoint(self) -> str:
        return self.cluster.members[0].endpoint

    def __call__(self, *args: str, input: str | bytes | None = None, env: dict | None = None):
        """raftkv ARGS against this member, in-process."""
        return invoke(self.endpoint, *args, input=input, env=env)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed and call.when in ("call", "teardown") and hasattr(item, "funcargs"):
        for value in item.funcargs.values():
            cluster = value.cluster if isinstance(value, Member) else value
            if isinstance(cluster, LocalCluster):
                report.sections.append(("raftkv member logs", log_tails(cluster)))


@pytest.fixture(scope="session")
def member(tmp_path_factory):
    """A single-member cluster for the whole session."""
    cluster = LocalCluster(1, str(tmp_path_factory.mktemp("cli-member")))
    try:
        cluster.start()
        yield Member(cluster)
    finally:
        cluster.stop()


@pytest.fixture
def kv(member):
    """Run raftkv against the shared member; ``kv.prefix`` is a key prefix of this test's own."""
    member.prefix = f"t-{uuid.uuid4().hex[:8]}/"
    return member


@pytest.fixture(scope="module")
def cluster3(tmp_path_factory):
    """A 3-member cluster for one module."""
    cluster = LocalCluster(3, str(tmp_path_factory.mktemp("cli-cluster3")))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
