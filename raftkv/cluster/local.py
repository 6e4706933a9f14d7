"""A cluster of ``raftkv serve`` processes on loopback.

    with LocalCluster(size=3, base_dir=tmp) as cluster:
        client = cluster.client()
        cluster.kill(cluster.leader_index())   # kill -9
        cluster.restart(0)

Every member is a real process with its own data directory; stop() (and
leaving the ``with`` block) terminates all of them, killing any that linger.

With a ``peer_proxy`` every member listens for peers on a port of its own
and advertises another one, where the proxy listens and forwards to it: all
peer traffic then passes the proxy (the benchmark's network partitions).
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Protocol

from raftkv.addresses import free_ports
from raftkv.client.remote import Client
from raftkv.errors import RaftKVError

log = logging.getLogger(__name__)


def _thread_states(pid: int) -> list[str]:
    states = []
    for task in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{task}/stat") as f:
                states.append(f.read().rsplit(")", 1)[1].split()[0])
        except OSError:
            continue
    return states


@dataclass
class MemberProcess:
    name: str
    client_port: int
    peer_port: int
    data_dir: str
    log_path: str
    extra_env: dict[str, str] = field(default_factory=dict)
    extra_args: list[str] = field(default_factory=list)   # flags of this member only
    joining: bool = False        # added to a running cluster: --initial-cluster-state existing
    process: subprocess.Popen | None = None
    # where it really listens for peers when a proxy listens on peer_port; None: on peer_port
    listen_peer_port: int | None = None
    peer_scheme: str = "http"    # https: peer TLS (the member's flags must give its certificates)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        """The URL the other members know it by (advertised)."""
        return f"{self.peer_scheme}://127.0.0.1:{self.peer_port}"

    @property
    def listen_peer_url(self) -> str:
        return f"{self.peer_scheme}://127.0.0.1:{self.listen_peer_port or self.peer_port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class PeerProxy(Protocol):
    """Forwards each member's advertised peer port to its listen port."""

    def add_member(self, member: MemberProcess) -> None:
        """Listen on ``member.peer_port`` from now on, forwarding to
        ``member.listen_peer_port``; ``member.process`` is looked at when needed
        (it changes when the member restarts)."""

    def start(self) -> None: ...

    def close(self) -> None: ...


class LocalCluster:
    def __init__(self, size: int, base_dir: str, *, base_port: int | None = None,
                 extra_args: list[str] | None = None, env: dict[str, str] | None = None,
                 wrapper: list[str] | None = None, peer_proxy: PeerProxy | None = None,
                 peer_scheme: str = "http") -> None:
        """``wrapper`` prefixes every member's command line (e.g. strace
        injecting fsync delays); it must exec the member in its own process
        group, as strace does, so that kill and pause reach both.
        ``peer_proxy`` carries all peer traffic (see the module's doc); the
        cluster starts it, and closes it when leaving the ``with`` block.
        ``peer_scheme`` "https" gives every member https peer URLs (peer TLS;
        ``extra_args`` or a member's ``extra_args`` name the certificates)."""
        self.peer_scheme = peer_scheme
        self.base_dir = os.path.abspath(base_dir)
        self.wrapper = list(wrapper or [])
        self.peer_proxy = peer_proxy
        self.retired: list[MemberProcess] = []
        self._next_index = 0
        os.makedirs(self.base_dir, exist_ok=True)
        per_member = self._ports_per_member
        if base_port is None:
            ports = free_ports(per_member * size)
        else:
            ports = list(range(base_port, base_port + per_member * size))
        self.extra_args = list(extra_args or [])
        self.env = dict(env or {})
        self.members: list[MemberProcess] = []
        for i in range(size):
            self._add(ports[per_member * i:per_member * (i + 1)], joining=False)

    # ---- life cycle ------------------------------------------------------------

    @property
    def initial_cluster(self) -> str:
        return ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> list[str]:
        return [m.endpoint for m in self.members]

    def command(self, member: MemberProcess) -> list[str]:
        return [
            sys.executable, "-m", "raftkv", "--log-level", "INFO", "serve",
            "--name", member.name,
            "--data-dir", member.data_dir,
            "--listen-client-urls", f"http://{member.endpoint}",
            "--listen-peer-urls", member.listen_peer_url,
            "--initial-advertise-peer-urls", member.peer_url,
            "--initial-cluster", self.initial_cluster,
            *self._joining_args(member),
            *self.extra_args,
            *member.extra_args,
        ]

    def _joining_args(self, member: MemberProcess) -> list[str]:
        return ["--initial-cluster-state", "existing"] if member.joining else []

    @property
    def _ports_per_member(self) -> int:
        return 3 if self.peer_proxy is not None else 2   # client, peer (, listen behind the proxy)

    def _add(self, ports: list[int], joining: bool) -> MemberProcess:
        name = f"m{self._next_index}"
        self._next_index += 1
        member = MemberProcess(name=name, client_port=ports[0], peer_port=ports[1],
                               data_dir=os.path.join(self.base_dir, f"{name}.raftkv"),
                               log_path=os.path.join(self.base_dir, f"{name}.log"), joining=joining,
                               listen_peer_port=ports[2] if self.peer_proxy is not None else None,
                               peer_scheme=self.peer_scheme)
        if self.peer_proxy is not None:
            self.peer_proxy.add_member(member)
        self.members.append(member)
        return member

    def new_member(self) -> MemberProcess:
        """A member to add to the running cluster (after a member add): its
        ports and data directory, not yet started."""
        return self._add(free_ports(self._ports_per_member), joining=True)

    def retire(self, index: int) -> MemberProcess:
        """Forget a member that was removed from the cluster (stopping it if
        it still runs): it leaves ``members`` and so every index after it shifts."""
        member = self.members.pop(index)
        if member.running:
            os.killpg(member.process.pid, signal.SIGKILL)
            member.process.wait(timeout=10)
        self.retired.append(member)
        return member

    def start(self, timeout: float = 30.0) -> LocalCluster:
        for i in range(len(self.members)):
            self.start_member(i)
        self.wait_ready(timeout)
        return self

    def start_member(self, index: int) -> None:
        member = self.members[index]
        if member.running:
            raise RuntimeError(f"{member.name} is already running")
        if self.peer_proxy is not None:
            self.peer_proxy.start()  # idempotent
        env = {**os.environ, **self.env, **member.extra_env}
        log_file = open(member.log_path, "ab")
        member.process = subprocess.Popen(
            [*self.wrapper, *self.command(member)], stdout=log_file, stderr=subprocess.STDOUT, env=env,
            start_new_session=True,
        )
        log_file.close()
        log.info("started member name=%s pid=%d", member.name, member.process.pid)

    def kill(self, index: int) -> None:
        """kill -9: no chance to flush or say goodbye."""
        member = self.members[index]
        if member.process is not None:
            if member.process.poll() is None:
                os.killpg(member.process.pid, signal.SIGKILL)
            member.process.wait(timeout=10)

    def pause(self, index: int, timeout: float = 5.0) -> None:
        """SIGSTOP the member and wait until every one of its threads stopped
        (a group stop is asynchronous: until then some threads still run)."""
        pid = self.members[index].process.pid
        os.killpg(pid, signal.SIGSTOP)
        deadline = time.monotonic() + timeout
        while not all(state in ("T", "t") for state in _thread_states(pid)):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.members[index].name} did not stop")
            time.sleep(0.002)

    def resume(self, index: int) -> None:
        os.killpg(self.members[index].process.pid, signal.SIGCONT)

    def restart(self, index: int, timeout: float = 30.0) -> None:
        self.kill(index)
        self.start_member(index)
        self.wait_member(index, timeout)

    def stop(self) -> None:
        for member in self.members + self.retired:
            process = member.process
            if process is None or process.poll() is not None:
                continue
            try:
                os.killpg(process.pid, signal.SIGCONT)
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        deadline = time.monotonic() + 10
        for member in self.members + self.retired:
            process = member.process
            if process is None:
                continue
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)

    def __enter__(self) -> LocalCluster:
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.stop()
        finally:
            if self.peer_proxy is not None:
                self.peer_proxy.close()

    # ---- looking at it -----------------------------------------------------------

    def client(self, index: int | None = None, timeout: float = 5.0) -> Client:
        endpoints = self.endpoints if index is None else [self.members[index].endpoint]
        return Client(endpoints, timeout=timeout)

    def member_status(self, index: int, timeout: float = 1.0):
        with Client([self.members[index].endpoint], timeout=timeout) as c:
            return c.status()

    def describe(self, log_lines: int = 12) -> str:
        """What every member says of itself and the last warnings and Raft
        events of its log: for a test's failure message."""
        lines = []
        for i, member in enumerate(self.members):
            try:
                s = self.member_status(i)
                state = (f"id={s.member_id:x} leader={s.leader:x} term={s.raft_term} "
                         f"index={s.raft_index} applied={s.raft_applied_index}")
            except RaftKVError as e:
                state = f"no status ({e})"
            lines.append(f"{member.name} running={member.running} {state}")
            try:
                with open(member.log_path, errors="replace") as f:
                    events = [line.rstrip() for line in f
                              if " WARNING " in line or " ERROR " in line or "term persisted" in line
                              or "became leader" in line or "serving" in line]
            except OSError:
                events = []
            lines.extend("    " + line for line in events[-log_lines:])
        return "\n".join(lines)

    def wait_member(self, index: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.member_status(index).leader:
                    return
            except RaftKVError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.members[index].name} not ready after {timeout}s; "
                                   f"see {self.members[index].log_path}")
            time.sleep(0.1)

    def wait_ready(self, timeout: float = 30.0) -> None:
        for i, member in enumerate(self.members):
            if member.running:
                self.wait_member(i, timeout)

    def leader_index(self, timeout: float = 30.0, exclude: set[int] = frozenset()) -> int:
        """The member every running member agrees leads."""
        deadline = time.monotonic() + timeout
        while True:
            ids = {}
            for i, member in enumerate(self.members):
                if member.running and i not in exclude:
                    try:
                        status = self.member_status(i)
                    except RaftKVError:
                        continue
                    ids[i] = (status.member_id, status.leader)
            leaders = {leader for _, leader in ids.values()}
            if len(leaders) == 1 and 0 not in leaders:
                (leader,) = leaders
                for i, (member_id, _) in ids.items():
                    if member_id == leader:
                        return i
            if time.monotonic() > deadline:
                raise TimeoutError(f"no agreed leader after {timeout}s: {ids}")
            time.sleep(0.1)


class EtcdCluster(LocalCluster):
    """The same, with real etcd processes: for side-by-side measurements."""

    ETCD = "/usr/bin/etcd"

    def command(self, member: MemberProcess) -> list[str]:
        return [
            self.ETCD, "--name", member.name, "--data-dir", member.data_dir,
            "--listen-client-urls", f"http://{member.endpoint}",
            "--advertise-client-urls", f"http://{member.endpoint}",
            "--listen-peer-urls", member.listen_peer_url,
            "--initial-advertise-peer-urls", member.peer_url,
            "--initial-cluster", self.initial_cluster,
            "--initial-cluster-token", os.path.basename(self.base_dir),
            *self._joining_args(member),
            *self.extra_args,
        ]
