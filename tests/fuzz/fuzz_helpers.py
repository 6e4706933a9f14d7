"""Helpers of the fuzz tests: how many examples, their settings, what the members logged.

The number of examples scales with RAFTKV_FUZZ_SCALE (default 1.0; 0.2 for
a quick look, 10 for a longer run).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, Phase, settings

from bench.fuzz import LogWatch, read_log
from raftkv.cluster.local import LocalCluster

SCALE = float(os.environ.get("RAFTKV_FUZZ_SCALE", "1"))


def examples(n: int) -> int:
    return max(1, int(n * SCALE))


def fuzz_settings(n: int, shrink: bool = True) -> settings:
    """Settings for a fuzz test: ``n`` examples (times the scale), no deadline, no database.
    Without ``shrink`` for tests whose target keeps state from one example to the next
    (a cluster that an example disturbed): the failing example is reported as found."""
    phases = [Phase.explicit, Phase.generate] + ([Phase.shrink] if shrink else [])
    return settings(max_examples=examples(n), deadline=None, database=None, phases=phases, print_blob=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much, HealthCheck.large_base_example,
                                           HealthCheck.function_scoped_fixture])


def log_tails(clusters: list[LocalCluster], lines: int = 60) -> str:
    parts = []
    for cluster in clusters:
        for member in cluster.members:
            tail = read_log(member.log_path).splitlines()[-lines:]
            parts.append(f"--- {member.name} ({member.log_path})\n" + "\n".join(tail))
    return "\n".join(parts)


def whole_log_problems(cluster: LocalCluster, ignore=None) -> list[str]:
    """Every traceback or CRITICAL line in the members' logs, from their start."""
    problems = []
    for member in cluster.members:
        problems += LogWatch(member.log_path, ignore=ignore).problems()
    return problems
