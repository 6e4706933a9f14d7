"""Helpers for the server tests: real ``raftkv serve`` processes, etcdctl, waiting."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable

import grpc

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv.cluster.local import LocalCluster, free_ports

ETCDCTL = shutil.which("etcdctl") or "/usr/bin/etcdctl"
HAVE_ETCDCTL = os.path.exists(ETCDCTL)
ETCDCTL_MISSING = "etcdctl not installed: apt-get install etcd-client"


def free_port() -> int:
    return free_ports(1)[0]


def etcdctl(endpoint: str, *args: str, timeout: float = 20.0, tls: list[str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess:
    """Run etcdctl (API v3) against one endpoint; its output as text."""
    command = [ETCDCTL, "--endpoints", endpoint, "--command-timeout", "10s", *(tls or []), *args]
    env = {**os.environ, "ETCDCTL_API": "3"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(command)} failed ({result.returncode}):\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


def wait_until(condition: Callable[[], object], *, timeout: float, what: str,
               interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception as e:  # not yet: the condition may fail while things settle
            value, last = None, e
        else:
            last = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not true after {timeout}s (last error: {last!r})")
        time.sleep(interval)


def serves(channel: grpc.Channel, key: bytes = b"still-serving") -> None:
    """The member behind ``channel`` still takes a write and reads it back."""
    kv = rpc_pb2_grpc.KVStub(channel)
    value = os.urandom(8).hex().encode()
    kv.Put(rpc_pb2.PutRequest(key=key, value=value), timeout=10)
    got = kv.Range(rpc_pb2.RangeRequest(key=key), timeout=10)
    assert [item.value for item in got.kvs] == [value]


def log_tails(cluster: LocalCluster, lines: int = 40) -> str:
    parts = []
    for member in cluster.members:
        try:
            with open(member.log_path, errors="replace") as f:
                tail = f.readlines()[-lines:]
        except OSError:
            tail = ["(no log)\n"]
        parts.append(f"--- {member.name} ({member.log_path})\n" + "".join(tail))
    return "\n".join(parts)
