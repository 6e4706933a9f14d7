"""aetcd (the asyncio etcd client) against raftkv and etcd: one session run
on both at once (in child processes: aetcd's protobuf modules clash with
raftkv's in one process); the results must be identical."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from interop_tools import kill_group, track

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(importlib.util.find_spec("aetcd") is None,
                       reason="aetcd not installed: pip install -e '.[test]'"),
]

DRIVER = Path(__file__).with_name("aetcd_driver.py")


def run_session(endpoint: str, timeout: float = 90.0) -> dict:
    host, port = endpoint.rsplit(":", 1)
    proc = track(subprocess.Popen([sys.executable, str(DRIVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True))
    try:
        out, err = proc.communicate(json.dumps({"host": host, "port": int(port)}), timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError(f"aetcd session timed out after {timeout}s\n{out}\n{err}") from None
    finally:
        kill_group(proc)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, f"aetcd_driver failed (rc={proc.returncode}):\n{out}\n{err}"
    return json.loads(lines[-1])


def test_aetcd(pair):
    with ThreadPoolExecutor(2) as ex:
        runs = [ex.submit(run_session, server.endpoints[0]) for server in (pair.etcd, pair.raftkv)]
        etcd, raftkv = (run.result() for run in runs)
    assert "driver_exception" not in etcd, etcd["driver_exception"]
    assert "driver_exception" not in raftkv, "aetcd failed against raftkv:\n" + raftkv["driver_exception"]
    if os.environ.get("INTEROP_SHOW"):
        print(f"\n===== aetcd against etcd\n{json.dumps(etcd, indent=1, sort_keys=True)}")
    differing = {key: (etcd.get(key), raftkv.get(key)) for key in sorted(set(etcd) | set(raftkv))
                 if etcd.get(key) != raftkv.get(key)}
    assert not differing, "aetcd results differ (etcd, raftkv):\n" + json.dumps(differing, indent=1)
