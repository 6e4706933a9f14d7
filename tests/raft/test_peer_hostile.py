"""Hostile traffic on every member's peer port, on a real 3-member cluster.

Whoever reaches a member's peer port must not be able to run code in it,
exhaust its memory, or stop it serving. Every test here sends one kind of
hostile traffic to the peer port of EVERY member (127.0.0.1:<peer_port>), then
checks the same contract:

- no marker file appears (the pickles below would create one when loaded);
- every member process still runs;
- every member kept serving writes *throughout* the attack (a prober puts
  through each member's own client endpoint all along; no member goes more
  than ``MAX_WRITE_GAP`` seconds without an acknowledged put), and *after* it
  (a put through each member, each key readable on all three);
- every member's RSS (VmRSS) grew by less than ``MAX_RSS_GROWTH`` over the
  attack;
- for the attacks a member must refuse outright (pickles, an absurd frame
  length, random bytes), the member logs a WARNING line with
  ``peer connection refused`` and ``peer=127.0.0.1:<port>``, the local port of
  the attacking socket.

Two more tests: a member restarted while every peer port holds 200 idle
connections still rejoins; and a peer port configured on 127.0.0.1 cannot be
reached on the machine's other addresses.

Every test gets a fresh cluster (conftest's make_cluster: stopped at teardown,
member logs in a failing test's report), twice: without a peer secret and with
``--peer-secret-file`` given to every member. Every wait has a deadline.
"""

from __future__ import annotations

import contextlib
import errno
import os
import pickle
import random
import re
import secrets
import selectors
import shlex
import socket
import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from raftkv.client.remote import Client
from raftkv.cluster.local import LocalCluster
from raftkv.errors import RaftKVError

from fault_helpers import is_transient, retry, wait_until  # tests/raft is on sys.path under pytest

MAX_RSS_GROWTH = 50 * 1024 * 1024   # bytes, per member, over one attack
MAX_WRITE_GAP = 5.0                 # seconds a member may go without an acknowledged put during an attack
REFUSAL_LOG_TIMEOUT = 10.0          # seconds for the refusal line to reach the member's log
MARKER_WINDOW = 1.5                 # seconds we keep looking for a marker after the last payload

MODES = ["no-secret", "peer-secret"]


# ---- payloads --------------------------------------------------------------------------


class RunsOnLoad:
    """Unpickling this calls ``fn(*args)`` in the loading process. Only the
    callable's module and name are pickled, not this class, so the loader
    needs nothing of ours."""

    def __init__(self, fn: Callable, args: tuple) -> None:
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def frame(data: bytes) -> bytes:
    """pysyncobj's framing: a native ('i', little-endian here) length, then the data."""
    return struct.pack("i", len(data)) + data


def pysyncobj_frame(obj: object, protocol: int = 2) -> bytes:
    """A frame exactly as pysyncobj's TcpConnection.send makes one (no secret)."""
    return frame(zlib.compress(pickle.dumps(obj, protocol=protocol), 3))


def pickle_variants(marker_dir: Path, member: int, other_peer: str) -> dict[str, bytes]:
    """Named byte strings, each sent on a connection of its own; loading any of
    their pickles creates ``marker_dir/<name>-m<member>``."""

    def marker(name: str) -> str:
        return str(marker_dir / f"{name}-m{member}")

    def opens(name: str) -> RunsOnLoad:
        return RunsOnLoad(open, (marker(name), "w"))

    def touches(name: str) -> RunsOnLoad:
        return RunsOnLoad(os.system, (f"touch {shlex.quote(marker(name))}",))

    return {
        # what pysyncobj would read as a peer's first message
        "zlib-open-p2": pysyncobj_frame(opens("zlib-open-p2"), protocol=2),
        "zlib-open-p0": pysyncobj_frame(opens("zlib-open-p0"), protocol=0),
        "zlib-open-p5": pysyncobj_frame(opens("zlib-open-p5"), protocol=5),
        "zlib-system": pysyncobj_frame(touches("zlib-system")),
        # not compressed
        "raw-open": frame(pickle.dumps(opens("raw-open"), protocol=2)),
        "raw-system": frame(pickle.dumps(touches("raw-system"), protocol=4)),
        # claim to be another member (its address, as pysyncobj's first frame), then the payload
        "after-address": pysyncobj_frame(other_peer) + pysyncobj_frame(opens("after-address")),
        # the same, the payload hidden inside a plausible raftkv message
        "after-address-in-message": pysyncobj_frame(other_peer) + pysyncobj_frame(
            {"type": "rk_ping", "id": opens("after-address-in-message"), "term": 1}),
        # pysyncobj's read-only (learner) greeting, then the payload
        "after-readonly": pysyncobj_frame("readonly") + pysyncobj_frame(opens("after-readonly")),
        # a utility command (what `raftkv serve` asks a peer when joining) carrying the payload
        "utility-command": pysyncobj_frame(["raftkv_members", opens("utility-command")]),
    }


def refusing_seed(start: int, size: int) -> int:
    """The first seed from ``start`` whose random bytes cannot be the start of
    any sane length-prefixed frame: read as a 4-byte length either way round
    (little- or big-endian, signed or not) it is negative or at least 1 GiB.
    The bytes are still random; this only spares a member the choice between
    waiting for a 1 GiB frame and refusing it."""
    seed = start
    while True:
        data = random.Random(seed).randbytes(size)
        if data[0] >= 0x40 and data[3] >= 0x40:
            return seed
        seed += 1


# ---- sockets ---------------------------------------------------------------------------


def connect(port: int, timeout: float = 10.0) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def local_port(s: socket.socket) -> int:
    return s.getsockname()[1]


def send_quietly(s: socket.socket, data: bytes) -> bool:
    """Send; False once the member has closed the connection (that is allowed)."""
    try:
        s.sendall(data)
        return True
    except OSError:
        return False


def drain_until_closed(s: socket.socket, timeout: float) -> bool:
    """Read (and discard) until the member closes the connection or ``timeout``;
    True if it closed it."""
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        s.settimeout(remaining)
        try:
            if not s.recv(65536):
                return True
        except socket.timeout:
            return False
        except OSError:
            return True


def close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.close()


# ---- the member processes ---------------------------------------------------------------


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


def refusal_lines(log_path: str, port: int) -> list[str]:
    pattern = re.compile(rf"peer=127\.0\.0\.1:{port}(?!\d)")
    with open(log_path, errors="replace") as f:
        return [line for line in f
                if "WARNING" in line and "peer connection refused" in line and pattern.search(line)]


class Prober(threading.Thread):
    """Puts through each member's own client endpoint, round robin, recording
    when each member last acknowledged one."""

    def __init__(self, cluster: LocalCluster, tag: str) -> None:
        super().__init__(daemon=True, name=f"prober-{tag}")
        self.tag = tag
        self.clients = [Client([m.endpoint], timeout=2.0) for m in cluster.members]
        self.acks: list[list[float]] = [[] for _ in cluster.members]
        self.errors: list[tuple[int, float, str]] = []
        self.unexpected: list[tuple[int, str]] = []
        self.started = self.ended = 0.0
        self._stop_event = threading.Event()

    def run(self) -> None:
        self.started = time.monotonic()
        seq = 0
        while not self._stop_event.is_set():
            for i, client in enumerate(self.clients):
                try:
                    client.put(f"/probe/{self.tag}/m{i}/{seq:06d}", f"v{seq}")
                    self.acks[i].append(time.monotonic())
                except RaftKVError as e:
                    self.errors.append((i, time.monotonic(), repr(e)))
                    if not is_transient(e):
                        self.unexpected.append((i, repr(e)))
            seq += 1
            self._stop_event.wait(0.05)
        self.ended = time.monotonic()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=15)
        assert not self.is_alive(), "the prober did not stop"
        for c in self.clients:
            c.close()

    def worst_gaps(self) -> list[float]:
        gaps = []
        for acks in self.acks:
            points = [self.started, *acks, self.ended]
            gaps.append(max(b - a for a, b in zip(points, points[1:])))
        return gaps


@dataclass
class HostileCluster:
    cluster: LocalCluster
    mode: str
    base: Path
    baseline_rss: dict[int, int] = field(default_factory=dict)   # pid -> RSS when first seen

    def peer_ports(self) -> list[int]:
        return [m.peer_port for m in self.cluster.members]

    def note_baselines(self) -> None:
        for m in self.cluster.members:
            if m.running and m.process.pid not in self.baseline_rss:
                self.baseline_rss[m.process.pid] = rss_bytes(m.process.pid)


@pytest.fixture(params=MODES)
def hostile(request, make_cluster, tmp_path) -> HostileCluster:
    """A fresh 3-member cluster for each test (an attack that damages one
    cannot spoil the next test's verdict); make_cluster stops it at teardown
    and appends the member logs to a failing test's report."""
    mode = request.param
    extra: list[str] = []
    if mode == "peer-secret":
        secret_file = tmp_path / "peer.secret"
        secret_file.write_text(secrets.token_hex(32) + "\n")
        extra = ["--peer-secret-file", str(secret_file)]
    cluster = make_cluster(3, extra_args=extra)
    cluster.leader_index(timeout=30)
    state = HostileCluster(cluster=cluster, mode=mode, base=tmp_path)
    # the RSS of a member that has just started still climbs for a while (imports,
    # gRPC threads): take the baseline once it has served some writes
    with cluster.client(timeout=2.0) as c:
        for i in range(20):
            retry(lambda: c.put(f"/warmup/{i}", "x" * 100), timeout=20, what="warm-up put")
    state.note_baselines()
    return state


class Attack:
    """One test's attack: its marker directory, the prober, and the checks."""

    def __init__(self, hostile: HostileCluster, name: str) -> None:
        self.hostile = hostile
        self.cluster = hostile.cluster
        self.name = name
        self.marker_dir = hostile.base / "markers" / name
        self.marker_dir.mkdir(parents=True, exist_ok=True)
        self.refusable: dict[int, list[tuple[str, int]]] = {i: [] for i in range(len(self.cluster.members))}
        self.prober: Prober | None = None

    # -- during ----------------------------------------------------------------

    @contextlib.contextmanager
    def probing(self) -> Iterator[None]:
        for m in self.cluster.members:
            assert m.running, f"{m.name} is not running before the attack"
        self.prober = Prober(self.cluster, f"{self.hostile.mode}/{self.name}")
        self.prober.start()
        try:
            yield
        finally:
            self.prober.stop()

    def must_refuse(self, member: int, what: str, sock: socket.socket) -> None:
        """The member must log the refusal of this connection."""
        self.refusable[member].append((what, local_port(sock)))

    # -- after -----------------------------------------------------------------

    def markers(self) -> list[str]:
        return sorted(p.name for p in self.marker_dir.iterdir())

    def check_no_marker(self, window: float = MARKER_WINDOW) -> None:
        deadline = time.monotonic() + window
        while True:
            found = self.markers()
            assert not found, (
                f"[{self.hostile.mode}] a pickle sent to a peer port was loaded: marker files "
                f"{found} appeared in {self.marker_dir}, i.e. a stranger ran code in the member")
            if time.monotonic() > deadline:
                return
            time.sleep(0.05)

    def check_processes(self) -> None:
        dead = [f"{m.name} exited with {m.process.returncode}" for m in self.cluster.members if not m.running]
        assert not dead, f"[{self.hostile.mode}] member processes died during the attack: {dead}"

    def check_served_throughout(self) -> None:
        p = self.prober
        assert p is not None
        assert not p.unexpected, f"non-transient errors from members during the attack: {p.unexpected[:10]}"
        gaps = p.worst_gaps()
        duration = p.ended - p.started
        for i, gap in enumerate(gaps):
            assert p.acks[i], f"m{i} acknowledged no put during the {duration:.1f}s attack: {p.errors[-5:]}"
            assert gap < MAX_WRITE_GAP, (
                f"m{i} went {gap:.1f}s without an acknowledged put during the {duration:.1f}s attack "
                f"(allowed {MAX_WRITE_GAP}s); acks={len(p.acks[i])}, last errors: "
                f"{[e for e in p.errors if e[0] == i][-5:]}")

    def check_served_after(self) -> None:
        members = self.cluster.members
        keys = {}
        for i, m in enumerate(members):
            key, value = f"/after/{self.hostile.mode}/{self.name}/m{i}", f"written-through-m{i}"
            with Client([m.endpoint], timeout=2.0) as c:
                retry(lambda: c.put(key, value), timeout=15, what=f"put through m{i} after {self.name}")
            keys[key.encode()] = value.encode()
        for j, m in enumerate(members):
            with Client([m.endpoint], timeout=2.0) as c:
                def has_all():
                    return all((kv := c.get(k, serializable=True)) is not None and kv.value == v
                               for k, v in keys.items())
                wait_until(has_all, timeout=15, what=f"m{j} has the keys written through every member")

    def check_rss(self) -> None:
        self.hostile.note_baselines()
        grown = {}
        for m in self.cluster.members:
            pid = m.process.pid
            grown[m.name] = rss_bytes(pid) - self.hostile.baseline_rss[pid]
        over = {name: f"{g / 2**20:.1f} MiB" for name, g in grown.items() if g >= MAX_RSS_GROWTH}
        assert not over, (f"[{self.hostile.mode}] member RSS grew by {over} over the attack "
                          f"(allowed {MAX_RSS_GROWTH / 2**20:.0f} MiB)")

    def check_refusals_logged(self) -> None:
        missing: dict[str, list] = {}

        def all_logged() -> bool:
            missing.clear()
            for i, conns in self.refusable.items():
                log_path = self.cluster.members[i].log_path
                gone = [(what, port) for what, port in conns if not refusal_lines(log_path, port)]
                if gone:
                    missing[self.cluster.members[i].name] = gone
            return not missing

        try:
            wait_until(all_logged, timeout=REFUSAL_LOG_TIMEOUT, what="refusals logged")
        except AssertionError:
            raise AssertionError(
                f"[{self.hostile.mode}] no WARNING 'peer connection refused' line naming "
                f"peer=127.0.0.1:<port> for these hostile connections (what, local port): {missing}"
            ) from None

    def verify(self, *, refusals: bool) -> None:
        self.check_no_marker()
        self.check_processes()
        self.check_served_throughout()
        self.check_served_after()
        self.check_rss()
        if refusals:
            self.check_refusals_logged()
        self.check_no_marker(window=0)


@pytest.fixture
def attack(request, hostile) -> Attack:
    return Attack(hostile, request.node.originalname)


# ---- a. pickles that run code when loaded -------------------------------------------------


@pytest.mark.timeout(180)
def test_a_pickles_are_never_loaded(attack: Attack):
    ports = attack.hostile.peer_ports()
    with attack.probing():
        for i, port in enumerate(ports):
            other = f"127.0.0.1:{ports[(i + 1) % len(ports)]}"
            for what, payload in pickle_variants(attack.marker_dir, i, other).items():
                s = connect(port)
                try:
                    attack.must_refuse(i, what, s)
                    send_quietly(s, payload)
                    # the member may close it (refused) or keep it; either way give it time to load
                    drain_until_closed(s, timeout=1.0)
                finally:
                    close(s)
        # a separate connection where the address frame and the payload arrive apart
        for i, port in enumerate(ports):
            other = f"127.0.0.1:{ports[(i + 1) % len(ports)]}"
            s = connect(port)
            try:
                attack.must_refuse(i, "address-then-pause-then-payload", s)
                if send_quietly(s, pysyncobj_frame(other)):
                    time.sleep(0.3)   # timing: two separate reads on the member's side
                    send_quietly(s, pysyncobj_frame(RunsOnLoad(
                        open, (str(attack.marker_dir / f"address-then-pause-m{i}"), "w"))))
                drain_until_closed(s, timeout=1.0)
            finally:
                close(s)
    attack.verify(refusals=True)


# ---- b. a frame claiming 2 GiB ------------------------------------------------------------


@pytest.mark.timeout(180)
def test_b_huge_frame_length_is_refused_not_buffered(attack: Attack):
    ports = attack.hostile.peer_ports()
    header = struct.pack("i", 2**31 - 1)
    with attack.probing(), contextlib.ExitStack() as sockets:
        trickles = []
        for i, port in enumerate(ports):
            s = sockets.enter_context(connect(port))
            attack.must_refuse(i, "2GiB-then-trickle", s)
            trickles.append(s)
            send_quietly(s, header)
        # a trickle of bytes after the header on every member's connection: 4 KiB every 100 ms for 3 s
        open_ = set(range(len(trickles)))
        deadline = time.monotonic() + 3.0
        chunk = random.Random(2).randbytes(4096)
        while open_ and time.monotonic() < deadline:
            for k in list(open_):
                if not send_quietly(trickles[k], chunk):
                    open_.discard(k)   # the member closed it: fine
            time.sleep(0.1)   # timing: the trickle's pace
        sockets.close()
        # and the same header followed by as much as the member will take, for 4 s (at most 32 MiB)
        for i, port in enumerate(ports):
            s = connect(port)
            try:
                attack.must_refuse(i, "2GiB-then-flood", s)
                s.settimeout(0.5)
                sent, deadline = 0, time.monotonic() + 4.0
                block = b"\0" * 65536
                if send_quietly(s, header):
                    while sent < 32 * 2**20 and time.monotonic() < deadline:
                        try:
                            sent += s.send(block)
                        except socket.timeout:
                            continue
                        except OSError:
                            break   # closed by the member: fine
            finally:
                close(s)
    attack.verify(refusals=True)


# ---- c. truncated frames ----------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_c_truncated_frames(attack: Attack):
    ports = attack.hostile.peer_ports()
    with attack.probing():
        for round_ in range(5):
            for i, port in enumerate(ports):
                s = connect(port)
                try:
                    send_quietly(s, struct.pack("i", 100) + random.Random(round_ * 10 + i).randbytes(10))
                    if round_ % 2:
                        drain_until_closed(s, timeout=0.5)   # sometimes linger before closing
                finally:
                    close(s)
        # a truncated pickle frame: the first half of a payload, then close
        for i, port in enumerate(ports):
            payload = pysyncobj_frame(RunsOnLoad(open, (str(attack.marker_dir / f"truncated-m{i}"), "w")))
            s = connect(port)
            try:
                send_quietly(s, payload[:len(payload) // 2])
            finally:
                close(s)
    attack.verify(refusals=False)


# ---- d. random bytes ---------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_d_random_bytes_are_refused(attack: Attack):
    ports = attack.hostile.peer_ports()
    with attack.probing():
        seed = 1000
        for i, port in enumerate(ports):
            for n in range(2):
                seed = refusing_seed(seed + 1, 4096)
                data = random.Random(seed).randbytes(4096)
                s = connect(port)
                try:
                    attack.must_refuse(i, f"random-4KiB-seed{seed}", s)
                    send_quietly(s, data)
                    drain_until_closed(s, timeout=1.0)
                finally:
                    close(s)
    attack.verify(refusals=True)


# ---- e. a slow trickle on several connections ------------------------------------------------------


@pytest.mark.timeout(180)
def test_e_slow_trickle_on_many_connections(attack: Attack):
    ports = attack.hostile.peer_ports()
    per_member = 5
    with attack.probing(), contextlib.ExitStack() as sockets:
        conns: list[tuple[socket.socket, bytes]] = []
        for i, port in enumerate(ports):
            payload = pysyncobj_frame(RunsOnLoad(open, (str(attack.marker_dir / f"trickle-m{i}"), "w")))
            assert len(payload) > 40   # what is trickled below is never a whole frame
            for _ in range(per_member):
                conns.append((sockets.enter_context(connect(port)), payload))
        # one byte per connection every 100 ms for 4 s
        live = set(range(len(conns)))
        for offset in range(40):
            for k in list(live):
                s, payload = conns[k]
                if not send_quietly(s, payload[offset:offset + 1]):
                    live.discard(k)   # the member closed it: fine
            time.sleep(0.1)   # timing: the trickle's pace
    attack.verify(refusals=False)


# ---- f. many idle connections -------------------------------------------------------------------


def open_idle(ports: list[int], per_member: int, timeout: float = 30.0) -> list[socket.socket]:
    """``per_member`` connections to each port, opened all at once (non-blocking,
    as an attacker would) and left idle; returns once every connect has
    finished or ``timeout`` passed. A member may refuse or drop some of them:
    that is its right; the sockets are returned either way, for closing."""
    conns: list[socket.socket] = []
    pending: set[socket.socket] = set()
    sel = selectors.DefaultSelector()   # epoll: more descriptors than select() takes
    try:
        for port in ports:
            for _ in range(per_member):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                conns.append(s)
                if s.connect_ex(("127.0.0.1", port)) in (0, errno.EINPROGRESS):
                    pending.add(s)
                    sel.register(s, selectors.EVENT_WRITE)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=0.2):
                sel.unregister(key.fileobj)
                pending.discard(key.fileobj)
    except BaseException:
        for s in conns:
            close(s)
        raise
    finally:
        sel.close()
    return conns


@pytest.mark.timeout(180)
def test_f_many_idle_connections(attack: Attack):
    ports = attack.hostile.peer_ports()
    with attack.probing():
        conns = open_idle(ports, 200)
        try:
            time.sleep(5.0)   # timing: hold them open while the prober writes through every member
        finally:
            for s in conns:
                close(s)
    attack.verify(refusals=False)


@pytest.mark.timeout(180)
def test_g_member_rejoins_while_peer_ports_hold_idle_connections(attack: Attack):
    """A member restarted while every peer port holds 200 idle connections
    still reconnects to the others and catches up: idle strangers do not use
    up whatever a member allows for connections."""
    cluster = attack.cluster
    ports = attack.hostile.peer_ports()
    leader = cluster.leader_index(timeout=30)
    follower = (leader + 1) % len(cluster.members)
    conns = open_idle(ports, 200)
    try:
        cluster.kill(follower)
        with cluster.client(timeout=2.0) as c:
            retry(lambda: c.put(f"/rejoin/{attack.hostile.mode}", "while-down"), timeout=15,
                  what="put while a follower is down")
        cluster.start_member(follower)
        cluster.wait_member(follower, timeout=30)
        # the restarted member's port gets its idle strangers too
        conns += open_idle([ports[follower]], 200)
        with Client([cluster.members[follower].endpoint], timeout=2.0) as c:
            wait_until(lambda: (kv := c.get(f"/rejoin/{attack.hostile.mode}", serializable=True)) is not None
                       and kv.value == b"while-down", timeout=20,
                       what=f"{cluster.members[follower].name} catches up after its restart")
    finally:
        for s in conns:
            close(s)
    # the restarted member has a new process: its RSS baseline starts now
    attack.hostile.note_baselines()
    with attack.probing():
        time.sleep(1.0)   # timing: a short probe of every member after the restart
    attack.verify(refusals=False)


# ---- who can reach the peer port ------------------------------------------------------------------


def non_loopback_ipv4() -> str | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.123", 9))   # no packet leaves: a UDP connect only picks the route
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


@pytest.mark.timeout(60)
def test_peer_port_listens_only_on_the_loopback_url_it_was_given(hostile: HostileCluster):
    """Every member was told --listen-peer-urls http://127.0.0.1:<port>: the
    port must not be reachable on the machine's other addresses."""
    ip = non_loopback_ipv4()
    if ip is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    reachable = []
    for m in hostile.cluster.members:
        try:
            s = socket.create_connection((ip, m.peer_port), timeout=2.0)
        except OSError:
            continue
        reachable.append(f"{m.name} at {ip}:{m.peer_port}")
        close(s)
    assert not reachable, (f"[{hostile.mode}] peer ports configured on 127.0.0.1 accept connections "
                           f"on a non-loopback address: {reachable}")
