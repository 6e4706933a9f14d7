"""Network partitions: the peer proxy on its own (with small echo processes as
members), then partition scenarios on real raftkv and etcd clusters."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from bench.cli import passed
from bench.harness import Scenario, run_scenario
from bench.partition import cut_links
from bench.proxy import PartitionProxy
from raftkv.cluster.local import MemberProcess, free_ports

# A member: an echo server on its listen socket (inherited, already listening:
# a member's client never reaches a proxy port whose member is not listening
# yet, which the proxy could only answer by ending the connection it had
# accepted) that checks every connection's lines are 0, 1, 2, ...; with a
# target port, a client that sends such lines every 5 ms and checks the echoes
# the same way, reconnecting when the connection ends. Its counters go to a
# JSON file.
AGENT = r'''
import json, os, socket, sys, threading, time
listen_fd, target, status = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
st = {"served": 0, "server_gaps": 0, "echoed": 0, "client_gaps": 0, "connections": 0, "ends": 0}
lock = threading.Lock()

def lines(sock):
    for line in sock.makefile("rb"):
        if not line.endswith(b"\n"):
            return
        yield int(line)

def serve(c):
    expect = 0
    try:
        for n in lines(c):
            with lock:
                st["served"] += 1
                st["server_gaps"] += n != expect
            expect = n + 1
            c.sendall(b"%d\n" % n)
    except OSError:
        pass
    c.close()

def server():
    s = socket.socket(fileno=listen_fd)
    while True:
        c, _ = s.accept()
        threading.Thread(target=serve, args=(c,), daemon=True).start()

def client():
    while True:
        try:
            c = socket.create_connection(("127.0.0.1", target))
        except OSError:
            time.sleep(0.05)
            continue
        with lock:
            st["connections"] += 1
        stop = threading.Event()
        def send():
            i = 0
            try:
                while not stop.is_set():
                    c.sendall(b"%d\n" % i)
                    i += 1
                    time.sleep(0.005)
            except OSError:
                pass
        threading.Thread(target=send, daemon=True).start()
        expect = 0
        try:
            for n in lines(c):
                with lock:
                    st["echoed"] += 1
                    st["client_gaps"] += n != expect
                expect = n + 1
        except OSError:
            pass
        stop.set()
        c.close()
        with lock:
            st["ends"] += 1
        time.sleep(0.05)

threading.Thread(target=server, daemon=True).start()
if target:
    threading.Thread(target=client, daemon=True).start()
while True:
    with lock:
        data = json.dumps(st)
    with open(status + ".tmp", "w") as f:
        f.write(data)
    os.replace(status + ".tmp", status)
    time.sleep(0.02)
'''


def wait_for(predicate, timeout=10.0, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what}: not within {timeout}s")


def listening(port: int) -> socket.socket:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", port))
    s.listen(16)
    return s


class Agents:
    """Member a (under a shell wrapper: the agent is the shell's child) sends
    to member b through the proxy; both are echo servers behind it. With
    ``a_known=False`` the proxy is not told a's process (``self.a_process``)
    until ``know_a()``, as if a connected before its Popen returned."""

    def __init__(self, tmp_path, a_known: bool = True) -> None:
        script = tmp_path / "agent.py"
        script.write_text(AGENT)
        ports = free_ports(4)
        self.a = MemberProcess("a", 0, ports[0], str(tmp_path), str(tmp_path / "a.log"), listen_peer_port=ports[1])
        self.b = MemberProcess("b", 0, ports[2], str(tmp_path), str(tmp_path / "b.log"), listen_peer_port=ports[3])
        self.status = {"a": str(tmp_path / "a.json"), "b": str(tmp_path / "b.json")}
        self.proxy = PartitionProxy()
        self.proxy.add_member(self.a)
        self.proxy.add_member(self.b)
        self.proxy.start()
        python = sys.executable
        listen_a, listen_b = listening(ports[1]), listening(ports[3])
        with listen_a, listen_b:
            fa, fb = listen_a.fileno(), listen_b.fileno()
            self.b.process = subprocess.Popen([python, str(script), str(fb), "0", self.status["b"]],
                                              start_new_session=True, pass_fds=(fb,))
            # "; exit" keeps the shell: the agent runs as its child, in its process group
            self.a_process = subprocess.Popen(
                ["sh", "-c", f"'{python}' '{script}' {fa} {ports[2]} '{self.status['a']}'; exit $?"],
                start_new_session=True, pass_fds=(fa,))
        if a_known:
            self.know_a()

    def know_a(self) -> None:
        self.a.process = self.a_process

    def stats(self, name: str) -> dict:
        try:
            with open(self.status[name]) as f:
                return json.load(f)
        except (OSError, ValueError):
            return {}

    def close(self) -> None:
        for process in (self.a_process, self.b.process):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        self.proxy.close()


def started(tmp_path, a_known: bool = True):
    a = Agents(tmp_path, a_known)
    try:
        wait_for(lambda: a.stats("a").get("echoed", 0) > 20, what="echoes through the proxy")
        yield a
    finally:
        a.close()


@pytest.fixture
def agents(tmp_path):
    yield from started(tmp_path)


@pytest.fixture
def agents_a_unknown(tmp_path):
    yield from started(tmp_path, a_known=False)


def frozen(agents: Agents, name: str, key: str, settle: float = 0.2, watch: float = 0.5) -> bool:
    time.sleep(settle)  # what was in flight before the cut
    before = agents.stats(name)[key]
    time.sleep(watch)
    return agents.stats(name)[key] == before


def growing(agents: Agents, name: str, key: str, by: int = 20, timeout: float = 10.0) -> None:
    before = agents.stats(name)[key]
    wait_for(lambda: agents.stats(name)[key] >= before + by, timeout, f"{name}.{key} growing")


def no_gaps(agents: Agents) -> None:
    assert agents.stats("a")["client_gaps"] == 0, agents.stats("a")
    assert agents.stats("b")["server_gaps"] == 0, agents.stats("b")


@pytest.mark.timeout(30)
def test_two_way_cut_is_silence_then_a_new_connection_without_holes(agents):
    assert agents.proxy.stats["unknown_sources"] == 0  # the wrapped agent was found
    agents.proxy.cut(cut_links(["a", "b"], "a"))
    assert frozen(agents, "a", "echoed") and frozen(agents, "b", "served")
    assert agents.stats("a")["ends"] == 0  # silence, not a reset
    agents.proxy.heal()
    assert agents.proxy.stats["closed_at_heal"] == 1  # it lost bytes: closed
    growing(agents, "a", "echoed")
    assert agents.stats("a")["ends"] == 1 and agents.stats("a")["connections"] == 2
    no_gaps(agents)


@pytest.mark.timeout(30)
def test_one_way_cut_passes_the_other_direction(agents):
    agents.proxy.cut(cut_links(["a", "b"], "b", oneway=True))  # what b sends is lost
    time.sleep(0.2)
    growing(agents, "b", "served")       # a -> b passes
    assert frozen(agents, "a", "echoed", settle=0)  # b -> a does not
    agents.proxy.heal()
    growing(agents, "a", "echoed")
    assert agents.stats("a")["ends"] == 1
    no_gaps(agents)


@pytest.mark.timeout(30)
def test_cut_without_traffic_keeps_the_connection(agents):
    # a connection that lost nothing survives the heal: only tainted ones are closed
    agents.proxy.cut({("x", "y")})
    agents.proxy.heal()
    assert agents.proxy.stats["closed_at_heal"] == 0, agents.proxy.stats
    growing(agents, "a", "echoed")
    assert agents.stats("a")["ends"] == 0, (agents.stats("a"), agents.proxy.stats)


@pytest.mark.timeout(30)
def test_connection_from_a_member_not_yet_known_is_cut(agents_a_unknown):
    # a connected before the proxy knew its process (a busy machine can run a
    # new member before its Popen returns): once known, its connection is cut
    agents = agents_a_unknown
    assert agents.proxy.stats["unknown_sources"] == 1
    agents.know_a()
    agents.proxy.cut(cut_links(["a", "b"], "a"))
    assert frozen(agents, "a", "echoed") and frozen(agents, "b", "served")
    assert agents.proxy.stats["unknown_sources"] == 0 and agents.proxy.stats["identified_late"] == 1
    agents.proxy.heal()
    assert agents.proxy.stats["closed_at_heal"] == 1
    growing(agents, "a", "echoed")
    assert agents.stats("a")["ends"] == 1
    no_gaps(agents)


@pytest.mark.timeout(30)
def test_unknown_sources_pass_and_errors_do_not_stop_the_proxy(agents, tmp_path):
    proxy = agents.proxy
    # a member with nothing listening behind its port: the connection is just closed
    (p1, p2) = free_ports(2)
    ghost = MemberProcess("ghost", 0, p1, str(tmp_path), str(tmp_path / "g.log"), listen_peer_port=p2)
    proxy.add_member(ghost)
    with socket.create_connection(("127.0.0.1", p1), timeout=5) as s:
        assert s.recv(10) == b""
    proxy.cut(cut_links(["a", "b"], "b"))
    with socket.create_connection(("127.0.0.1", agents.b.peer_port), timeout=5) as s:
        f = s.makefile("rb")
        for i in range(50):
            s.sendall(b"%d\n" % i)
            assert f.readline() == b"%d\n" % i
        proxy.heal()
        s.sendall(b"50\n")
        assert f.readline() == b"50\n"  # not closed at heal: it never lost a byte
    assert proxy.stats["unknown_sources"] >= 2
    growing(agents, "a", "echoed")
    no_gaps(agents)


# ---- raftkv behind the proxy --------------------------------------------------------------

@pytest.mark.timeout(60)
def test_raftkv_leader_cut_off_with_uncommitted_entries_catches_up(tmp_path):
    """The leader, its messages lost, appends what its clients send and cannot
    commit it; after the heal it must drop that suffix and catch up while the
    new leader keeps appending (it once stayed behind for good)."""
    from raftkv.client.remote import Client
    from raftkv.cluster.local import LocalCluster
    from raftkv.errors import RaftKVError

    with LocalCluster(3, str(tmp_path / "c"), peer_proxy=PartitionProxy()) as c:
        c.start(timeout=30)
        leader = c.leader_index()
        names = [m.name for m in c.members]
        stop = threading.Event()

        def writer(i: int) -> None:
            target = leader if i < 16 else (leader + 1 + i % 2) % 3
            with Client([c.members[target].endpoint], timeout=1) as client:
                n = 0
                while not stop.is_set():
                    try:
                        client.put(b"k%d" % (n % 10), b"v%d" % n)
                    except RaftKVError:
                        pass
                    n += 1

        threads = [threading.Thread(target=writer, args=(i,), daemon=True) for i in range(22)]
        for t in threads:
            t.start()
        try:
            time.sleep(1)
            c.peer_proxy.cut(cut_links(names, names[leader], oneway=True))
            time.sleep(2.5)
            c.peer_proxy.heal()

            def caught_up() -> bool:
                try:
                    revisions = [c.member_status(i).revision for i in range(3)]
                except RaftKVError:
                    return False
                return max(revisions) - revisions[leader] < 50

            # it used to stay behind for tens of seconds, or for good
            wait_for(caught_up, timeout=5, what="the former leader catching up under load")
        finally:
            stop.set()
            for t in threads:
                t.join(timeout=5)


# ---- scenarios on real clusters --------------------------------------------------------

def summary(r: dict) -> dict:
    return {k: r.get(k) for k in ("faults", "linearizability", "lost_examples", "watch_problems", "convergence")}


def check_partition_leader(r: dict, fault: str) -> None:
    assert r["ops"] > 50, summary(r)
    assert passed(r), summary(r)
    (event,) = r["faults"]
    assert event["fault"] == fault and event["member"] == event["leader_before"], event
    assert event["new_leader"] not in (None, event["leader_before"]), event
    assert event["time_to_leader_s"] is not None and event["recovered_at"] > event["at"], event
    assert event["first_success_after"] is not None, event


def scenario(system: str, fault: str) -> Scenario:
    return Scenario(system=system, nodes=3, workload="mix", clients=8, keys=8, duration=8.0,
                    fault=fault, fault_at=1.5, fault_delay=3.0, watchers=1)


@pytest.mark.timeout(120)
def test_smoke_raftkv_partition_leader(tmp_path):
    r = run_scenario(scenario("raftkv", "partition-leader"), quiet=True, keep_dir=str(tmp_path))
    check_partition_leader(r, "partition-leader")


@pytest.mark.timeout(120)
def test_smoke_raftkv_partition_leader_oneway(tmp_path):
    r = run_scenario(scenario("raftkv", "partition-leader-oneway"), quiet=True, keep_dir=str(tmp_path))
    check_partition_leader(r, "partition-leader-oneway")


@pytest.mark.skipif(not os.path.exists("/usr/bin/etcd"), reason="etcd-server not installed")
@pytest.mark.timeout(120)
def test_smoke_etcd_partition_leader(tmp_path):
    r = run_scenario(scenario("etcd", "partition-leader"), quiet=True, keep_dir=str(tmp_path))
    check_partition_leader(r, "partition-leader")
