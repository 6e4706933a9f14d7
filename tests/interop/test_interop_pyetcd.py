"""The real etcd Python client (etcd-sdk-python / pyetcd) against raftkv and etcd.

pyetcd never loads in this process (its protobuf modules clash with raftkv's);
each scenario runs in a child process, pyetcd_driver.py, that prints JSON.
Both servers run the same scenario at once; the results must be identical.
"""

from __future__ import annotations

import importlib.util
import json
import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from interop_tools import pyetcd_run

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(importlib.util.find_spec("pyetcd") is None,
                       reason="etcd-sdk-python (module pyetcd) not installed: pip install -e '.[test]'"),
]


def both(pair, scenario: str) -> tuple[dict, dict]:
    with ThreadPoolExecutor(2) as ex:
        fe = ex.submit(pyetcd_run, pair.etcd.endpoints[0], scenario)
        fr = ex.submit(pyetcd_run, pair.raftkv.endpoints[0], scenario)
        etcd, raftkv = fe.result(), fr.result()
    assert "driver_exception" not in etcd, etcd["driver_exception"]
    if os.environ.get("INTEROP_SHOW"):
        print(f"\n===== pyetcd {scenario} against etcd\n{json.dumps(etcd, indent=1, sort_keys=True)}")
    return etcd, raftkv


def assert_same(etcd: dict, raftkv: dict, ignore: tuple[str, ...] = ()) -> None:
    assert "driver_exception" not in raftkv, "pyetcd failed against raftkv:\n" + raftkv["driver_exception"]
    diffs = []
    for key in sorted(set(etcd) | set(raftkv)):
        if key in ignore:
            continue
        if etcd.get(key) != raftkv.get(key):
            diffs.append(f"{key}:\n  etcd:   {json.dumps(etcd.get(key))}\n  raftkv: {json.dumps(raftkv.get(key))}")
    assert not diffs, "pyetcd results differ between etcd and raftkv:\n" + "\n".join(diffs)


@pytest.mark.parametrize("scenario", ["kv", "txn", "watch", "lease", "lock"])
def test_pyetcd(pair, scenario):
    etcd, raftkv = both(pair, scenario)
    assert_same(etcd, raftkv)


def test_pyetcd_watch_batching(pair):
    etcd, raftkv = both(pair, "watch_batching")
    assert_same(etcd, raftkv)


def test_pyetcd_maintenance(pair):
    etcd, raftkv = both(pair, "maintenance")
    assert etcd["hash"] == "int", etcd
    assert_same(etcd, raftkv, ignore=("hash",))


def test_pyetcd_hash(pair):
    etcd, raftkv = both(pair, "maintenance")
    assert etcd["hash"] == raftkv["hash"] == "int", (etcd["hash"], raftkv["hash"])


def test_pyetcd_against_cluster(raftkv_cluster3):
    """pyetcd through a follower and through the leader of a 3-member raftkv cluster."""
    for endpoint in raftkv_cluster3.endpoints:
        result = pyetcd_run(endpoint, "txn")
        assert "driver_exception" not in result, result["driver_exception"]
        assert result["all_true"]["ok"] is True, result
        break   # the scenario writes fixed revisions: once per fresh cluster
    result = pyetcd_run(raftkv_cluster3.endpoints[-1], "lock")
    assert "driver_exception" not in result, result["driver_exception"]
    assert result["acquire"] and result["contender_after_release"], result
