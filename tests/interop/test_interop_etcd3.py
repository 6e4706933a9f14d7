"""python-etcd3 (PyPI etcd3, the most used Python etcd client) against raftkv and etcd.

Its generated protobuf modules need protobuf 3, so it gets a venv of its own
(built once, inside .venv, from the pins below) and runs etcd3_driver.py
there. Both servers run the same session at once; the results must be identical.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from interop_tools import kill_group, track

pytestmark = pytest.mark.timeout(300)

PINS = ["etcd3==0.12.0", "protobuf==3.20.3", "grpcio==1.59.5", "tenacity==6.3.1"]
VENV = Path(sys.prefix) / "clients" / "etcd3"


def client_python() -> str:
    """The Python of python-etcd3's venv, made on first use (one process at a time)."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".installed"
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / ".etcd3.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not stamp.exists() or stamp.read_text() != " ".join(PINS):
            subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=120)
            subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PINS], check=True, timeout=600,
                           capture_output=True)
            stamp.write_text(" ".join(PINS))
    return str(python)


@pytest.fixture(scope="module")
def etcd3_python():
    return client_python()


DRIVER = Path(__file__).with_name("etcd3_driver.py")


def run_session(python: str, endpoint: str, timeout: float = 120.0) -> dict:
    host, port = endpoint.rsplit(":", 1)
    proc = track(subprocess.Popen([python, str(DRIVER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True, start_new_session=True))
    try:
        out, err = proc.communicate(json.dumps({"host": host, "port": int(port)}), timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError(f"python-etcd3 session timed out after {timeout}s\n{out}\n{err}") from None
    finally:
        kill_group(proc)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, f"etcd3_driver failed (rc={proc.returncode}):\n{out}\n{err}"
    return json.loads(lines[-1])


def test_python_etcd3(pair, etcd3_python):
    with ThreadPoolExecutor(2) as ex:
        runs = [ex.submit(run_session, etcd3_python, server.endpoints[0]) for server in (pair.etcd, pair.raftkv)]
        etcd, raftkv = (run.result() for run in runs)
    assert "driver_exception" not in etcd, etcd["driver_exception"]
    assert "driver_exception" not in raftkv, "python-etcd3 failed against raftkv:\n" + raftkv["driver_exception"]
    if os.environ.get("INTEROP_SHOW"):
        print(f"\n===== python-etcd3 against etcd\n{json.dumps(etcd, indent=1, sort_keys=True)}")
    differing = {key: (etcd.get(key), raftkv.get(key)) for key in sorted(set(etcd) | set(raftkv))
                 if etcd.get(key) != raftkv.get(key)}
    assert not differing, "python-etcd3 results differ (etcd, raftkv):\n" + json.dumps(differing, indent=1)
