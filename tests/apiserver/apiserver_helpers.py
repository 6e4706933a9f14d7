"""``raftkv apiserver`` and the example controllers as processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from raftkv.addresses import free_ports

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def running(args: list[str], log_path: Path, ready_url: str | None = None, *, module: str = "raftkv",
            timeout: float = 30.0) -> Iterator[subprocess.Popen]:
    """``python -m module args`` until the block ends (SIGTERM, then SIGKILL),
    waiting for ``ready_url`` to answer 200 first."""
    log = open(log_path, "w")  # noqa: SIM115 - open while the process runs
    proc = subprocess.Popen([sys.executable, "-m", module, *args], stdout=log, stderr=subprocess.STDOUT,
                            cwd=REPO, start_new_session=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        deadline = time.monotonic() + timeout
        while ready_url is not None:
            try:
                with urllib.request.urlopen(ready_url, timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text()
            time.sleep(0.1)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
        log.close()


@contextmanager
def apiserver(data: Path, *store: str) -> Iterator[str]:
    """An apiserver over ``store`` (its flags; --embedded in ``data`` when
    none), yielding its URL."""
    (port,) = free_ports(1)
    store_args = list(store) or ["--embedded", str(data / "store")]
    url = f"http://127.0.0.1:{port}"
    with running(["apiserver", *store_args, "--secure-port", str(port)], data / "apiserver.log", url + "/healthz"):
        yield url
