"""Helpers for the interop tests: real etcd and raftkv servers, etcdctl, normalizing output.

The tests drive *unmodified* clients (Debian's etcdctl 3.4 and the
etcd-sdk-python package) against raftkv and, for comparison, against a real
etcd started the same way on free loopback ports.  Everything here runs in the
pytest process except the servers and the clients, which are subprocesses in
their own process groups, killed whole when a test ends.

This module never imports pyetcd (its generated protobuf modules clash with
raftkv's own in one descriptor pool); pyetcd runs in ``pyetcd_driver.py``.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from raftkv.cluster.local import LocalCluster, free_ports

ETCD_BIN = "/usr/bin/etcd"
ETCDCTL_BIN = shutil.which("etcdctl") or "/usr/bin/etcdctl"
HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]

ETCD_MISSING = f"real etcd not installed at {ETCD_BIN} (apt-get install etcd-server)"
ETCDCTL_MISSING = "etcdctl not installed (apt-get install etcd-client)"

START_TIMEOUT = 30.0
CTL_TIMEOUT = 20.0


# ---------------------------------------------------------------------------
# processes
# ---------------------------------------------------------------------------


# Every process group this module starts, so that even an abrupt end of the test
# process (pytest-timeout, KeyboardInterrupt past the fixtures) leaves nothing behind.
_CHILDREN: "weakref.WeakSet[subprocess.Popen]" = weakref.WeakSet()


def track(proc: subprocess.Popen) -> subprocess.Popen:
    _CHILDREN.add(proc)
    return proc


@atexit.register
def _kill_all_children() -> None:
    for proc in list(_CHILDREN):
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass


def kill_group(proc: subprocess.Popen | None, sig: int = signal.SIGKILL) -> None:
    """Kill a child started with start_new_session=True, and its whole group."""
    if proc is None:
        return
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=10)


def _log_tail(path: Path | str, n: int = 3000) -> str:
    try:
        return Path(path).read_bytes()[-n:].decode(errors="replace")
    except OSError:
        return ""


@dataclass
class Result:
    """What one etcdctl invocation did."""

    args: list[str]
    rc: int
    out: str
    err: str  # stderr without etcdctl's JSON log lines (timestamps, client uuids)
    raw_err: str = ""

    def ok(self) -> "Result":
        assert self.rc == 0, f"etcdctl {' '.join(self.args)} failed rc={self.rc}:\n{self.raw_err}{self.out}"
        return self

    def json(self):
        return json.loads(self.out)


def strip_log_lines(err: str) -> str:
    return "".join(line for line in err.splitlines(keepends=True) if not line.startswith('{"level"'))


def etcdctl(endpoints: list[str], args: list[str], *, input: str | None = None,
            timeout: float = CTL_TIMEOUT, extra_env: dict[str, str] | None = None) -> Result:
    env = {**os.environ, "ETCDCTL_API": "3", **(extra_env or {})}
    env.pop("ETCDCTL_ENDPOINTS", None)
    cmd = [ETCDCTL_BIN, "--endpoints=" + ",".join(endpoints), *args]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            start_new_session=True, encoding="utf-8", errors="backslashreplace")
    track(proc)
    try:
        out, err = proc.communicate(input, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError(f"etcdctl {' '.join(args)} timed out after {timeout}s\n"
                             f"stdout: {out}\nstderr: {err}") from None
    finally:
        kill_group(proc)
    return Result(list(args), proc.returncode, out, strip_log_lines(err), err)


class Server:
    """A single-member server (etcd or raftkv) seen through etcdctl."""

    kind = "?"
    name = "m0"

    def __init__(self) -> None:
        self.client_ports: list[int] = []
        self.peer_ports: list[int] = []

    @property
    def endpoints(self) -> list[str]:
        return [f"127.0.0.1:{p}" for p in self.client_ports]

    def ctl(self, *args: str, endpoints: list[str] | None = None, **kw) -> Result:
        return etcdctl(endpoints or self.endpoints, list(args), **kw)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def log_tail(self) -> str:
        return ""


class EtcdServer(Server):
    """Real etcd members on loopback (one, or a cluster of several), each in its own group."""

    kind = "etcd"

    def __init__(self, base_dir: Path, size: int = 1, extra_args: list[str] | None = None) -> None:
        super().__init__()
        self.base_dir = Path(base_dir)
        self.base_dir.mkdir(parents=True, exist_ok=True)
        ports = free_ports(2 * size)
        self.client_ports = ports[0::2]
        self.peer_ports = ports[1::2]
        self.names = [f"m{i}" for i in range(size)]
        cluster = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in zip(self.names, self.peer_ports))
        self.procs: list[subprocess.Popen] = []
        self.log_paths = [self.base_dir / f"{n}.log" for n in self.names]
        self.cmds = []
        for i, name in enumerate(self.names):
            client = f"http://127.0.0.1:{self.client_ports[i]}"
            peer = f"http://127.0.0.1:{self.peer_ports[i]}"
            self.cmds.append([
                ETCD_BIN, "--name", name, "--data-dir", str(self.base_dir / f"{name}.etcd"),
                "--listen-client-urls", client, "--advertise-client-urls", client,
                "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
                "--initial-cluster", cluster, "--initial-cluster-token", "interop",
                "--logger", "zap", "--log-level", "warn", *(extra_args or []),
            ])
        for i in range(size):
            self.procs.append(self._spawn(i))
        self.started = time.monotonic()

    def _spawn(self, i: int) -> subprocess.Popen:
        with open(self.log_paths[i], "ab") as log:
            return track(subprocess.Popen(self.cmds[i], stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))

    def log_tail(self) -> str:
        return "\n".join(_log_tail(p) for p in self.log_paths)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        while True:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"etcd exited with {p.returncode}:\n{self.log_tail()}")
            r = etcdctl(self.endpoints, ["endpoint", "health", "--command-timeout=2s", "--dial-timeout=1s"],
                        timeout=10)
            if r.rc == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"etcd not healthy after {timeout}s:\n{r.out}{r.err}\n{self.log_tail()}")
            time.sleep(0.05)

    def kill(self, i: int) -> None:
        kill_group(self.procs[i])

    def restart(self, i: int) -> None:
        """Start a killed member again on its old data dir."""
        kill_group(self.procs[i])
        self.procs[i] = self._spawn(i)

    def stop(self) -> None:
        for p in self.procs:
            kill_group(p)
        shutil.rmtree(self.base_dir, ignore_errors=True)


class RaftkvServer(Server):
    """``python -m raftkv serve`` members through raftkv's own LocalCluster."""

    kind = "raftkv"

    def __init__(self, base_dir: Path, size: int = 1, extra_args: list[str] | None = None) -> None:
        super().__init__()
        self.base_dir = Path(base_dir)
        self.cluster = LocalCluster(size=size, base_dir=str(self.base_dir), extra_args=extra_args)
        self.client_ports = [m.client_port for m in self.cluster.members]
        self.peer_ports = [m.peer_port for m in self.cluster.members]
        try:
            for i in range(size):
                self.start_member(i)
        except BaseException:
            self.cluster.stop()
            raise
        self.started = time.monotonic()

    def start_member(self, i: int) -> None:
        self.cluster.start_member(i)
        track(self.cluster.members[i].process)

    def log_tail(self) -> str:
        return "\n".join(_log_tail(m.log_path) for m in self.cluster.members)

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until etcdctl gets a committed answer from every running member; fails fast
        (with the member's log) if one exits."""
        deadline = time.monotonic() + timeout
        running = [m for m in self.cluster.members if m.process is not None]
        while True:
            for m in running:
                if m.process.poll() is not None:
                    raise RuntimeError(f"raftkv member {m.name} exited with {m.process.returncode}:\n"
                                       + _log_tail(m.log_path))
            r = etcdctl([m.endpoint for m in running],
                        ["endpoint", "health", "--command-timeout=2s", "--dial-timeout=1s"], timeout=10)
            if r.rc == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"raftkv not healthy after {timeout}s:\n{r.out}{r.err}\n{self.log_tail()}")
            time.sleep(0.05)

    def kill(self, i: int) -> None:
        self.cluster.kill(i)

    def restart(self, i: int) -> None:
        """Start a killed member again on its old data dir."""
        self.cluster.kill(i)
        self.start_member(i)

    def stop(self, graceful: bool = False) -> None:
        """Kill every member (kill -9 unless ``graceful``: tests throw their data away)."""
        try:
            if graceful:
                self.cluster.stop()
            else:
                for i in range(len(self.cluster.members)):
                    self.cluster.kill(i)
        finally:
            for m in self.cluster.members:  # LocalCluster.stop waits; make sure
                if m.process is not None and m.process.poll() is None:
                    kill_group(m.process)
            shutil.rmtree(self.base_dir, ignore_errors=True)


class ServerPool:
    """Fresh single-member servers on demand, spares of each kind starting ahead.

    Every test gets brand-new servers, so both start empty at revision 1 and a
    scripted sequence gives identical revisions.  ``spares`` servers of each
    kind are spawned while earlier tests run (most of a start is waiting for
    the first election); close() kills everything.
    """

    def __init__(self, base_dir: Path, kinds: tuple[str, ...], spares: int = 2) -> None:
        self.base_dir = Path(base_dir)
        self.kinds = kinds
        self.spare_count = spares
        self.count = 0
        self.spares: dict[str, list[Server]] = {k: [] for k in kinds}
        self.live: set[Server] = set()

    def _spawn(self, kind: str) -> Server:
        self.count += 1
        d = self.base_dir / f"{kind}{self.count}"
        server = EtcdServer(d) if kind == "etcd" else RaftkvServer(d)
        self.live.add(server)
        return server

    def claim(self, kind: str, spare: bool = True) -> Server:
        last_error = None
        for _attempt in range(2):
            waiting = self.spares[kind]
            server = waiting.pop(0) if waiting else self._spawn(kind)
            while spare and len(waiting) < self.spare_count:
                waiting.append(self._spawn(kind))
            try:
                server.wait_ready()
                return server
            except RuntimeError as e:
                last_error = e
                self.release(server)
        raise RuntimeError(f"could not start {kind}: {last_error}")

    def hold_spares(self) -> None:
        """Stop the spares (for tests whose timing a starting server would disturb)."""
        for kind, waiting in self.spares.items():
            while waiting:
                self.release(waiting.pop())

    def release(self, server: Server) -> None:
        try:
            server.stop()
        finally:
            self.live.discard(server)

    def close(self) -> None:
        for waiting in self.spares.values():
            waiting.clear()
        for server in list(self.live):
            self.release(server)


@contextlib.contextmanager
def seeded_pair(pool: ServerPool, seed):
    """Fresh etcd and raftkv with ``seed(session)`` applied to both (identically), for read-only tests.

    Yields (etcd, raftkv).  The seeding transcripts must already agree.
    """
    if not os.path.exists(ETCD_BIN):
        import pytest
        pytest.skip(ETCD_MISSING)
    etcd = pool.claim("etcd")
    try:
        raftkv = pool.claim("raftkv")
        try:
            sessions = []
            for server in (etcd, raftkv):
                s = Session(server, identify(server))
                seed(s)
                sessions.append(s)
            compare(*sessions)
            yield etcd, raftkv
        finally:
            pool.release(raftkv)
    finally:
        pool.release(etcd)


def run_on_seeded(seeded, scenario) -> tuple["Session", "Session"]:
    """Run a read-only scenario against a seeded (etcd, raftkv) and compare."""
    etcd, raftkv = seeded
    a = Session(etcd, identify(etcd))
    scenario(a)
    b = Session(raftkv, identify(raftkv))
    scenario(b)
    compare(a, b)
    return a, b


# ---------------------------------------------------------------------------
# normalizing what differs legitimately
# ---------------------------------------------------------------------------

HEX_ID = re.compile(r"(?<![0-9A-Za-z])[0-9a-f]{12,16}(?![0-9A-Za-z])")
DEC_ID = re.compile(r"(?<![0-9A-Za-z.])[0-9]{12,20}(?![0-9A-Za-z.])")
RAFT_TERM = [
    (re.compile(r'"raft_term": ?\d+'), '"raft_term":<TERM>'),
    (re.compile(r'"RaftTerm" : \d+'), '"RaftTerm" : <TERM>'),
]
TOOK = re.compile(r"took = [0-9.]+[µmn]?s")
TABLE_TOOK = re.compile(r"\| +[0-9.]+[µmn]?s +\|")
TABLE_RULE = re.compile(r"-{2,}")
TABLE_PAD = re.compile(r" {2,}")
ATTACHED = re.compile(r"attached keys\(\[([^\]]*)\]\)")
REMAINING = re.compile(r"remaining\(-?\d+s\)")


class Normalizer:
    """Rewrites one server's output so it can be compared with another's.

    Member and cluster ids become <MEMBERn>/<CLUSTER>; every other large id (a
    lease, in hex like etcdctl prints it or in decimal like its JSON has it)
    becomes <ID1>, <ID2>, ... in order of first appearance, so the same lease
    gets the same name everywhere in one transcript; client/peer URLs become
    <CLIENTn>/<PEERn>; raft terms become <TERM>; health-check latencies go.
    """

    def __init__(self, server: Server, member_ids: list[int] | None = None,
                 cluster_id: int | None = None) -> None:
        self.names: dict[int, str] = {}
        self.server = server
        if cluster_id is not None:
            self.names[cluster_id] = "<CLUSTER>"
        for i, mid in enumerate(member_ids or []):
            self.names[mid] = f"<MEMBER{i}>"
        self.counter = 0
        # a lease's remaining TTL depends on timing; lease tests check it separately
        self.hide_remaining = True

    def _name(self, value: int) -> str:
        if value not in self.names:
            self.counter += 1
            self.names[value] = f"<ID{self.counter}>"
        return self.names[value]

    def __call__(self, text: str) -> str:
        for i, p in enumerate(self.server.client_ports):
            text = text.replace(f"127.0.0.1:{p}", f"<CLIENT{i}>")
        for i, p in enumerate(self.server.peer_ports):
            text = text.replace(f"127.0.0.1:{p}", f"<PEER{i}>")
        for pattern, repl in RAFT_TERM:
            text = pattern.sub(repl, text)
        text = TOOK.sub("took = <T>", text)
        text = TABLE_TOOK.sub("| <T> |", text)
        text = re.sub(r'"took":"[^"]*"', '"took":"<T>"', text)
        # etcd lists a lease's keys in Go map order (random): compare them sorted
        text = ATTACHED.sub(lambda m: "attached keys([" + " ".join(sorted(m.group(1).split(" "))) + "])", text)
        if self.hide_remaining:
            text = REMAINING.sub("remaining(<R>s)", text)

        def hex_repl(m: re.Match) -> str:
            token = m.group(0)
            if token.isdigit() and len(token) >= 12 and int(token) in self.names:
                return self.names[int(token)]
            return self._name(int(token, 16))

        def dec_repl(m: re.Match) -> str:
            token = m.group(0)
            # a hex id whose digits happen to be 0-9 alone (about one in 2,000
            # 16-digit ids) reads as decimal too: a known id wins
            if int(token) not in self.names and len(token) <= 16 and int(token, 16) in self.names:
                return self.names[int(token, 16)]
            return self._name(int(token))

        # decimal first (JSON); a token of digits only is taken as decimal
        text = DEC_ID.sub(dec_repl, text)
        text = HEX_ID.sub(hex_repl, text)
        # etcdctl prints some ids with %16x: a shorter id comes out space-padded
        text = re.sub(r"(?<=\S) {2,}(<(?:CLUSTER|MEMBER\d*|ID\d+)>)", r" \1", text)
        # tables: column widths follow the (differing) ids; compare the cells only
        text = "".join(TABLE_PAD.sub(" ", TABLE_RULE.sub("--", line)) if line[:1] in "+|" else line
                       for line in text.splitlines(keepends=True))
        return text


def identify(server: Server) -> Normalizer:
    """A Normalizer that knows the server's member and cluster ids."""
    r = server.ctl("endpoint", "status", "-w", "json").ok()
    statuses = r.json()
    by_endpoint = {s["Endpoint"]: s["Status"]["header"] for s in statuses}
    member_ids = [by_endpoint[e]["member_id"] for e in server.endpoints]
    cluster_id = statuses[0]["Status"]["header"]["cluster_id"]
    return Normalizer(server, member_ids, cluster_id)


# ---------------------------------------------------------------------------
# a scripted session against one server, recorded for comparison
# ---------------------------------------------------------------------------


@dataclass
class Step:
    args: list[str]
    rc: int
    out: str
    err: str
    stdin: str | None = None

    def show(self) -> str:
        stdin = repr(self.stdin) if self.stdin and len(self.stdin) < 300 else \
            f"{self.stdin[:200]!r}... ({len(self.stdin)} characters)" if self.stdin else ""
        s = f"$ etcdctl {' '.join(self.args)}" + (f"   <<< {stdin}" if stdin else "")
        return f"{s}\n[rc={self.rc}]\n{self.out}" + (f"[stderr]\n{self.err}" if self.err else "")


@dataclass
class Session:
    """Runs etcdctl commands against one server and records normalized results."""

    server: Server
    norm: Normalizer
    steps: list[Step] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return self.server.kind

    def ctl(self, *args: str, input: str | None = None, timeout: float = CTL_TIMEOUT,
            endpoints: list[str] | None = None, record: bool = True) -> Result:
        r = self.server.ctl(*args, input=input, timeout=timeout, endpoints=endpoints)
        if record:
            self.steps.append(Step([self.norm(a) for a in args], r.rc, self.norm(r.out),
                                   self.norm(r.err), input))
        return r

    def bg(self, *args: str, stdin: bool = False) -> "LineReader":
        """A long-running etcdctl (watch, lock, elect); the caller closes it."""
        return etcdctl_bg(self.server.endpoints, list(args), stdin=stdin)

    def record_lines(self, label: str, lines: list[str], err: str = "") -> None:
        """Record what a background etcdctl printed, normalized."""
        self.steps.append(Step([label], 0, self.norm("".join(x + "\n" for x in lines)), self.norm(err)))

    def note(self, label: str, value) -> None:
        """Record a derived value (already normalized by the caller) for comparison."""
        self.steps.append(Step(["#", label], 0, f"{value}\n", ""))

    def transcript(self) -> str:
        return "\n".join(step.show() for step in self.steps)


def compare(etcd: Session, raftkv: Session) -> None:
    """Assert that both sessions gave identical normalized transcripts; show a diff otherwise."""
    if os.environ.get("INTEROP_SHOW"):   # debugging aid: what etcd said
        print(f"\n===== etcd transcript\n{etcd.transcript()}")
    a, b = etcd.steps, raftkv.steps
    if [(s.args, s.rc, s.out, s.err) for s in a] == [(s.args, s.rc, s.out, s.err) for s in b]:
        return
    lines = ["raftkv's etcdctl output differs from etcd's:"]
    for i in range(max(len(a), len(b))):
        sa = a[i] if i < len(a) else None
        sb = b[i] if i < len(b) else None
        same = sa and sb and (sa.args, sa.rc, sa.out, sa.err) == (sb.args, sb.rc, sb.out, sb.err)
        if same:
            lines.append(f"--- step {i}: same\n{sa.show()}")
        else:
            lines.append(f"--- step {i}: DIFFERENT")
            lines.append("etcd:\n" + (sa.show() if sa else "(none)"))
            lines.append("raftkv:\n" + (sb.show() if sb else "(none)"))
    raise AssertionError("\n".join(lines))


def run_each(pair, scenario) -> tuple[Session, Session]:
    """Run ``scenario(session)`` against etcd then raftkv, without comparing:
    for a documented difference, whose test asserts each side's answer."""
    etcd_session = Session(pair.etcd, identify(pair.etcd))
    scenario(etcd_session)
    raftkv_session = Session(pair.raftkv, identify(pair.raftkv))
    scenario(raftkv_session)
    return etcd_session, raftkv_session


def run_both(pair, scenario) -> tuple[Session, Session]:
    """Run ``scenario(session)`` against etcd then raftkv, and compare the transcripts."""
    etcd_session, raftkv_session = run_each(pair, scenario)
    compare(etcd_session, raftkv_session)
    return etcd_session, raftkv_session


# ---------------------------------------------------------------------------
# long-running clients (etcdctl watch, lock, elect)
# ---------------------------------------------------------------------------


class LineReader:
    """A subprocess whose stdout lines are collected by a thread, with timeouts."""

    def __init__(self, cmd: list[str], env: dict[str, str] | None = None, stdin: bool = False) -> None:
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE if stdin else subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env={**os.environ, **(env or {})}, encoding="utf-8",
            errors="backslashreplace", bufsize=1,
            start_new_session=True)
        track(self.proc)
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.err_chunks: list[str] = []
        self._t_out = threading.Thread(target=self._pump, daemon=True)
        self._t_err = threading.Thread(target=self._pump_err, daemon=True)
        self._t_out.start()
        self._t_err.start()

    def _pump(self) -> None:
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def _pump_err(self) -> None:
        for line in self.proc.stderr:
            self.err_chunks.append(line)

    @property
    def stderr(self) -> str:
        return strip_log_lines("".join(self.err_chunks))

    def send(self, text: str) -> None:
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def read_lines(self, n: int, timeout: float = 10.0) -> list[str]:
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while len(got) < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                self.lines.put(None)
                break
            got.append(line)
        return got

    def drain(self, quiet: float = 0.3) -> list[str]:
        """Whatever more arrives until nothing has for ``quiet`` seconds."""
        got = []
        while True:
            try:
                line = self.lines.get(timeout=quiet)
            except queue.Empty:
                return got
            if line is None:
                self.lines.put(None)
                return got
            got.append(line)

    def terminate(self) -> int | None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        kill_group(self.proc)
        return self.proc.returncode

    def terminate_with(self, sig: int) -> None:
        """Send ``sig`` to the process group (e.g. SIGKILL: no chance to clean up)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, sig)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        kill_group(self.proc)

    def __enter__(self) -> "LineReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def etcdctl_bg(endpoints: list[str], args: list[str], stdin: bool = False) -> LineReader:
    return LineReader([ETCDCTL_BIN, "--endpoints=" + ",".join(endpoints), *args],
                      env={"ETCDCTL_API": "3"}, stdin=stdin)


# ---------------------------------------------------------------------------
# pyetcd, in a child process
# ---------------------------------------------------------------------------

PYETCD_DRIVER = HERE / "pyetcd_driver.py"


def pyetcd_run(endpoint: str, scenario: str, timeout: float = 60.0, **params) -> dict:
    """Run one scenario of pyetcd_driver.py against ``endpoint``; return its JSON result."""
    host, port = endpoint.rsplit(":", 1)
    request = json.dumps({"host": host, "port": int(port), "scenario": scenario, "params": params})
    proc = track(subprocess.Popen([sys.executable, str(PYETCD_DRIVER)], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  start_new_session=True, cwd=str(HERE)))
    try:
        out, err = proc.communicate(request, timeout=timeout)
    except subprocess.TimeoutExpired:
        kill_group(proc)
        out, err = proc.communicate()
        raise AssertionError(f"pyetcd scenario {scenario} timed out after {timeout}s\n{out}\n{err}") from None
    finally:
        kill_group(proc)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise AssertionError(f"pyetcd driver failed (rc={proc.returncode}) in {scenario}:\n{out}\n{err}")
    return json.loads(lines[-1])
