"""Helpers for the CLI tests: run ``raftkv`` in-process (CliRunner) or as a
real process, compare with etcdctl, clean up processes."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from click.testing import CliRunner, Result

from raftkv.cli.main import cli
from raftkv.cluster.local import LocalCluster

ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"
HAVE_ETCDCTL = os.path.exists(ETCDCTL)
ETCDCTL_MISSING = "etcdctl not installed: apt-get install etcd-client"
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Run:
    """The outcome of one command: exit code, stdout, stderr."""

    code: int
    out: str
    err: str
    exception: BaseException | None = None

    def ok(self) -> Run:
        assert self.code == 0, f"exit {self.code}\nstdout:\n{self.out}\nstderr:\n{self.err}\n{self.exception!r}"
        return self

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def invoke(endpoints: str | None, *args: str, input: str | bytes | None = None,
           env: dict[str, str] | None = None) -> Run:
    """``raftkv [--endpoints E] ARGS`` in this process, through click's CliRunner."""
    runner = CliRunner()
    argv = (["--endpoints", endpoints] if endpoints else []) + list(args)
    result: Result = runner.invoke(cli, argv, input=input, env=env, catch_exceptions=True)
    exception = result.exception if not isinstance(result.exception, SystemExit) else None
    if exception is not None:
        import traceback

        detail = "".join(traceback.format_exception(exception))
        raise AssertionError(f"raftkv {' '.join(argv)} raised:\n{detail}")
    return Run(result.exit_code, result.stdout, result.stderr)


def raftkv_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "raftkv", *args]


def subprocess_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "RAFTKV_ENDPOINTS"}
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run(*args: str, endpoints: str | None = None, input: str | None = None, timeout: float = 30.0,
        env: dict[str, str] | None = None) -> Run:
    """``raftkv ARGS`` as a real process."""
    extra = {"RAFTKV_ENDPOINTS": endpoints} if endpoints else {}
    result = subprocess.run(raftkv_command(*args), capture_output=True, text=True, input=input,
                            timeout=timeout, env={**subprocess_env(**extra), **(env or {})})
    return Run(result.returncode, result.stdout, result.stderr)


def etcdctl(endpoint: str, *args: str, input: str | None = None, timeout: float = 20.0) -> Run:
    result = subprocess.run([ETCDCTL, "--endpoints", endpoint, *args], capture_output=True, text=True,
                            input=input, timeout=timeout, env={**os.environ, "ETCDCTL_API": "3"})
    return Run(result.returncode, result.stdout, result.stderr)


class Background:
    """A raftkv process in its own process group, stopped (and reaped) for sure."""

    def __init__(self, *args: str, endpoints: str | None = None) -> None:
        extra = {"RAFTKV_ENDPOINTS": endpoints} if endpoints else {}
        self.process = subprocess.Popen(
            raftkv_command(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env=subprocess_env(PYTHONUNBUFFERED="1", **extra), start_new_session=True)
        self.out_lines: list[str] = []
        self.err_lines: list[str] = []
        import threading

        self._threads = [threading.Thread(target=self._pump, args=(self.process.stdout, self.out_lines),
                                          daemon=True),
                         threading.Thread(target=self._pump, args=(self.process.stderr, self.err_lines),
                                          daemon=True)]
        for t in self._threads:
            t.start()

    @staticmethod
    def _pump(stream, sink: list[str]) -> None:
        for line in stream:
            sink.append(line.rstrip("\n"))

    @property
    def out(self) -> str:
        return "\n".join(self.out_lines)

    @property
    def err(self) -> str:
        return "\n".join(self.err_lines)

    def wait_for(self, condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None and not condition():
                time.sleep(0.2)  # let the pumps drain
                if condition():
                    return
                raise AssertionError(f"{what}: the process exited ({self.process.returncode})\n"
                                     f"stdout:\n{self.out}\nstderr:\n{self.err}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{what}: not after {timeout}s\nstdout:\n{self.out}\nstderr:\n{self.err}")
            time.sleep(0.05)

    def interrupt(self, timeout: float = 15.0) -> int:
        """Ctrl-C (SIGINT to the process); its exit code."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGINT)
        code = self.process.wait(timeout=timeout)
        for t in self._threads:
            t.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass

    def __enter__(self) -> Background:
        return self

    def __exit__(self, *exc: object) -> None:
        self.kill()


def kill_processes_mentioning(text: str) -> None:
    """SIGKILL every process whose command line contains ``text`` (a test's own
    temporary directory, so only processes that test started)."""
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


def log_tails(cluster: LocalCluster, lines: int = 30) -> str:
    parts = []
    for member in cluster.members:
        try:
            with open(member.log_path, errors="replace") as f:
                tail = f.readlines()[-lines:]
        except OSError:
            tail = ["(no log)\n"]
        parts.append(f"--- {member.name} ({member.log_path})\n" + "".join(tail))
    return "\n".join(parts)


def wait_until(condition: Callable[[], object], *, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while True:
        try:
            value = condition()
        except Exception as e:  # not yet
            value, last = None, e
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {timeout}s (last error: {last!r})")
        time.sleep(interval)
