"""A randomized nemesis: faults of every kind composed over a whole run, one at a time.

    python -m bench run --workload mix --nemesis random --seed 7 --duration 60

The schedule (:func:`schedule`) is a pure function of the seed, the run's
length and the cluster size: the same seed gives the same faults, targets
(by role, or by member index) and planned times, on raftkv and on etcd alike.
Kinds are drawn from a shuffled bag (:data:`BAG`, refilled when empty), so a
run long enough to empty the bag meets every kind, and ``kill`` twice as often
as the others:

==================  =========================================================  =============
kind                what                                                        lasts (s)
==================  =========================================================  =============
kill                kill -9 of a member's process group (the leader, or a      1-4, then
                    member by index), restarted on its data                    restart
pause               SIGSTOP of a member (leader or index), then SIGCONT        1-4
partition           a member cut off from every other, both ways (peer proxy)  2-5
partition-oneway    everything a member sends is lost; it still hears (3/4     2-5
                    of the time the leader)
restart-all         kill -9 of every member, all started again                 1
member-replace      a follower (the n-th, by index) removed, a fresh member    until caught
                    added and waited for until it has caught up                up
slow-disk           a member killed (-9) and restarted under strace, every     4-8, then a
                    fsync/fdatasync delayed 1, 5 or 20 x --fsync-delay-ms;     restart
                    when the window ends, killed and restarted without strace
kill-main-only      kill -9 of a member's main PID only (not its group), if    0.5, then
                    possible while raftkv writes a snapshot (waits up to 3 s   restart
                    for the forked writer), restarted half a second later
clock-jump          the wall clock of one member (or all) stepped +-5 min,     2-6, then
                    +-1 h or +-1 day, then stepped back; raftkv only (an       stepped back
                    LD_PRELOAD shim, tests/raft/wall_clock_shim.c): etcd is
                    Go and reads time through the vDSO, so for etcd the fault
                    is recorded as not applicable and nothing is done
==================  =========================================================  =============

Why slow-disk restarts its member: strace can inject delays only into a
process it started (its seccomp filter is installed at exec; it cannot be
attached later, nor its delay changed), and a process started under
``--seccomp-bpf`` cannot outlive a detached strace (its fsyncs would fail
with ENOSYS). So a slow disk is a window during which the member runs under
strace, entered and left by a kill -9 and a restart on the same data.

Recovery is guaranteed by construction:

- one fault at a time: each fault ends with its own recovery (heal, SIGCONT,
  restart, clock stepped back), and a safety net after every fault (also
  after an error) heals, resumes and restarts whatever is left;
- the next fault is injected only once every member serves again and all
  agree on a leader (up to ``RECOVERY_TIMEOUT`` s, then ``MIN_GAP`` s more);
  a member that does not come back is a ``restart_failed`` (it fails the run,
  as in bench.kill_main) and no further fault is injected;
- so a fault never meets another one, the cluster loses at most one member at
  a time (all of them only in restart-all, for one second), and a majority is
  always back before the next fault;
- nothing starts after ``duration - tail``, so the end of the load runs on a
  whole cluster; planned faults that the run's real pace pushes past that
  are listed as not injected.

Every injection is an event in the result's ``faults`` (with the harness's
``unavailable_s`` around it, the new leader and when if there was an
election) and a row of ``faults_injected``: {kind, member, at_s, healed_at_s,
planned_at_s, details}.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field

from bench import kill_main, partition
from bench.faults import FaultRunner
from bench.membership import replace_follower
from bench.slow_disk import strace_wrapper

KINDS = ("kill", "pause", "partition", "partition-oneway", "restart-all", "member-replace", "slow-disk",
         "kill-main-only", "clock-jump")
# the bag the kinds are drawn from: weights are the number of copies
BAG = ("kill", "kill", "pause", "partition", "partition-oneway", "restart-all", "member-replace", "slow-disk",
       "kill-main-only", "clock-jump")
# seconds a fault of each kind is planned to take to recover (for the planned timeline only)
RECOVERY_ESTIMATE = {"kill": 2.0, "pause": 1.0, "partition": 1.0, "partition-oneway": 1.0, "restart-all": 3.0,
                     "member-replace": 6.0, "slow-disk": 4.0, "kill-main-only": 2.0, "clock-jump": 0.5}
GAP = (1.0, 3.0)             # seconds of calm after a fault's planned recovery, uniform
MIN_GAP = 1.0                # seconds of calm at least, once the cluster is whole again
RECOVERY_TIMEOUT = 30.0      # seconds for every member to serve again after a fault
SNAPSHOT_WAIT = 3.0          # kill-main-only: seconds to wait for raftkv's snapshot writer
CLOCK_OFFSETS = (300, -300, 3600, -3600, 86400, -86400)
FSYNC_FACTORS = (1, 5, 20)   # slow-disk: multiples of --fsync-delay-ms
SHIM_SOURCE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "tests", "raft", "wall_clock_shim.c")


def warmup(duration: float) -> float:
    """Seconds of load before the first fault."""
    return min(3.0, 0.15 * duration)


def tail(duration: float) -> float:
    """Seconds at the end of the load during which no fault is active."""
    return min(4.0, 0.15 * duration)


@dataclass(frozen=True)
class Planned:
    n: int                  # position in the schedule
    kind: str
    at: float               # planned seconds into the load
    window: float           # seconds the fault lasts before its recovery starts
    target: str             # "leader" | "member" (by index) | "follower" (n-th) | "all"
    index: int | None = None
    params: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        d = asdict(self)
        d["at"] = round(self.at, 3)
        d["window"] = round(self.window, 3)
        return d


def _leader_or_member(rng: random.Random, nodes: int, p_leader: float = 0.5) -> tuple[str, int | None]:
    if rng.random() < p_leader:
        return "leader", None
    return "member", rng.randrange(nodes)


def _draw(kind: str, rng: random.Random, nodes: int, fsync_delay_ms: float) -> tuple[float, str, int | None, dict]:
    """(window, target, index, params) of one fault of ``kind``."""
    if kind in ("kill", "pause"):
        return (round(rng.uniform(1.0, 4.0), 2), *_leader_or_member(rng, nodes), {})
    if kind == "partition":
        return (round(rng.uniform(2.0, 5.0), 2), *_leader_or_member(rng, nodes), {})
    if kind == "partition-oneway":
        return (round(rng.uniform(2.0, 5.0), 2), *_leader_or_member(rng, nodes, 0.75), {})
    if kind == "restart-all":
        return 1.0, "all", None, {}
    if kind == "member-replace":
        return 0.0, "follower", rng.randrange(nodes - 1), {}
    if kind == "slow-disk":
        window = round(rng.uniform(4.0, 8.0), 2)
        target, index = _leader_or_member(rng, nodes)
        return window, target, index, {"fsync_delay_ms": fsync_delay_ms * rng.choice(FSYNC_FACTORS)}
    if kind == "kill-main-only":
        return kill_main.RESTART_DELAY, *_leader_or_member(rng, nodes), {}
    if kind == "clock-jump":
        window = round(rng.uniform(2.0, 6.0), 2)
        if rng.random() < 0.3:
            target, index = "all", None
        else:
            target, index = "member", rng.randrange(nodes)
        return window, target, index, {"offset_s": rng.choice(CLOCK_OFFSETS)}
    raise ValueError(f"unknown kind {kind!r}")


def schedule(seed: int, duration: float, nodes: int = 3, fsync_delay_ms: float = 10.0) -> list[Planned]:
    """The faults of a run: a pure function of its arguments."""
    if nodes < 3:
        raise ValueError("the random nemesis needs at least 3 members (a majority must survive each fault)")
    rng = random.Random(f"bench-nemesis:{seed}")
    t, end = warmup(duration), duration - tail(duration)
    bag: list[str] = []
    plan: list[Planned] = []
    while True:
        if not bag:
            bag = list(BAG)
            rng.shuffle(bag)
        kind = bag.pop()
        window, target, index, params = _draw(kind, rng, nodes, fsync_delay_ms)
        if t + window > end:
            return plan
        plan.append(Planned(len(plan), kind, round(t, 3), window, target, index, params))
        t += window + RECOVERY_ESTIMATE[kind] + rng.uniform(*GAP)


# ---- wall clocks (raftkv only) ----------------------------------------------------------

def build_shim(folder: str) -> tuple[str | None, str | None]:
    """(path of the built wall clock shim, None), or (None, why not)."""
    if shutil.which("gcc") is None:
        return None, "gcc is needed to build the wall clock shim"
    if not os.path.exists(SHIM_SOURCE):
        return None, f"{SHIM_SOURCE} is missing"
    out = os.path.join(folder, "wall_clock_shim.so")
    r = subprocess.run(["gcc", "-shared", "-fPIC", "-O2", "-o", out, SHIM_SOURCE, "-ldl"],
                       capture_output=True, text=True, check=False)
    if r.returncode != 0:
        return None, f"gcc failed: {r.stderr.strip()[-300:]}"
    return out, None


class WallClocks:
    """Each member's wall clock offset, read by the LD_PRELOADed shim from a
    file of its own (every 50 ms); 0 unless a clock-jump is in force."""

    def __init__(self, shim: str, folder: str) -> None:
        self.shim = shim
        self.folder = folder
        os.makedirs(folder, exist_ok=True)

    def path(self, name: str) -> str:
        return os.path.join(self.folder, f"{name}.offset")

    def attach(self, member) -> None:
        """Give ``member`` (not started yet) the shim and an offset file at 0."""
        self.set(member.name, 0)
        member.extra_env.update({"LD_PRELOAD": self.shim, "RAFTKV_WALL_CLOCK_OFFSET_FILE": self.path(member.name)})

    def set(self, name: str, seconds: int) -> None:
        tmp = self.path(name) + ".tmp"
        with open(tmp, "w") as f:
            f.write(str(int(seconds)))
        os.replace(tmp, self.path(name))   # the shim never reads half a number

    def reset(self) -> None:
        for entry in os.listdir(self.folder):
            if entry.endswith(".offset"):
                self.set(entry[: -len(".offset")], 0)

    def loaded_in(self, pid: int) -> bool:
        try:
            with open(f"/proc/{pid}/maps") as f:
                return self.shim in f.read()
        except OSError:
            return False


def prepare(cluster, scenario, folder: str) -> dict:
    """Before the cluster starts: raftkv members get the wall clock shim
    (offset 0). Returns what to note in the result."""
    cluster.wall_clocks = None
    cluster.wall_clock_note = None
    if scenario.system != "raftkv":
        cluster.wall_clock_note = ("not applicable: etcd is Go and reads the wall clock through the vDSO, "
                                   "which an LD_PRELOAD shim does not reach")
        return {"clock_jumps": cluster.wall_clock_note}
    shim, why = build_shim(folder)
    if shim is None:
        cluster.wall_clock_note = f"not applicable: {why}"
        return {"clock_jumps": cluster.wall_clock_note}
    cluster.wall_clocks = WallClocks(shim, os.path.join(folder, "clocks"))
    for member in cluster.members:
        cluster.wall_clocks.attach(member)
    return {"clock_jumps": f"LD_PRELOAD {shim}"}


# ---- the runner ------------------------------------------------------------------------------

class NemesisRunner(FaultRunner):
    """Injects a :func:`schedule` into a running cluster (see the module's doc)."""

    def __init__(self, scenario, cluster, t0: float, log) -> None:
        super().__init__(scenario, cluster, t0, log)
        self.plan = schedule(scenario.seed, scenario.duration, scenario.nodes, scenario.fsync_delay_ms)
        self.end = scenario.duration - tail(scenario.duration)
        self.stop = threading.Event()     # set by the harness when the load ends
        self.not_injected: list[dict] = []
        self.base_wrapper = list(cluster.wrapper)
        self.clocks: WallClocks | None = getattr(cluster, "wall_clocks", None)
        self.ids: dict[int, str] = {}
        self.thread.name = "bench-nemesis"

    def _run(self) -> None:
        try:
            self._inject_all()
        except Exception as e:  # noqa: BLE001 - noted; the harness heals whatever is left
            self.events.append({"fault": "nemesis", "error": repr(e)})
            self.log(f"nemesis failed: {e!r}")
        finally:
            self.done.set()

    def _sleep_until(self, t: float) -> None:
        """Until ``t`` seconds into the run (a fault's window is never cut short)."""
        time.sleep(max(0.0, t - self.now()))

    def _inject_all(self) -> None:
        self.ids = kill_main._member_ids(self.cluster)
        calm_from = 0.0
        previous: dict | None = None
        for i, p in enumerate(self.plan):
            start = max(p.at, calm_from)
            if self.stop.is_set() or start + p.window > self.end:
                why = "the load ended" if self.stop.is_set() else "the run's pace pushed it past the end"
                self.not_injected += [dict(q.as_dict(), why=why) for q in self.plan[i:]]
                break
            if self.stop.wait(max(0.0, start - self.now())):
                self.not_injected += [dict(q.as_dict(), why="the load ended") for q in self.plan[i:]]
                break
            event = self._one(p)
            if previous is not None and "at" in previous and "at" in event:
                previous["window_s"] = event["at"] - previous["at"]   # its gap is not this one's
            if "at" in event:
                previous = event
            if event.get("restart_failed") or event.get("not_recovered"):
                self.not_injected += [dict(q.as_dict(), why="the cluster did not recover")
                                      for q in self.plan[i + 1:]]
                break
            calm_from = event["healthy_at"] + MIN_GAP

    def _one(self, p: Planned) -> dict:
        """Inject one fault and recover from it; its event."""
        c = self.cluster
        event: dict = {"fault": p.kind, "n": p.n, "planned_at": p.at, "planned_window_s": p.window,
                       "target": p.target if p.index is None else f"{p.target} {p.index}", **p.params}
        stop_watch = threading.Event()
        watch = None
        try:
            leader = c.leader_index(timeout=10)
            event["leader_before"] = c.members[leader].name
            term = c.member_status(leader, timeout=5).raft_term
            event["term_before"] = term
            watch = threading.Thread(target=self._watch_elections, args=(event, term, stop_watch),
                                     daemon=True, name="bench-nemesis-leader")
            watch.start()
            getattr(self, "_" + p.kind.replace("-", "_"))(p, event, leader)
        except Exception as e:  # noqa: BLE001 - noted in the event; the net below heals
            event["error"] = repr(e)
            self.log(f"  {self.now():.1f}s: {p.kind} failed: {e!r}")
        finally:
            self._safety_net(event)
        self._wait_healthy(event)
        stop_watch.set()
        if watch is not None:
            watch.join()
        if event.get("new_leader_at") is not None and "at" in event:
            event["time_to_leader_s"] = round(event["new_leader_at"] - event["at"], 3)
        self.events.append(event)
        return event

    def _watch_elections(self, event: dict, term_before: int, stop: threading.Event) -> None:
        """Note in ``event`` when a member first names a leader elected after
        the fault began (a term above ``term_before``), and which; until
        ``stop``. One client per member, kept (a member may come and go)."""
        from raftkv.client.remote import Client

        clients: dict[str, Client] = {}
        try:
            while not stop.is_set():
                for member in list(self.cluster.members):
                    if not member.running or member.name in self.paused_names():
                        continue
                    client = clients.get(member.endpoint)
                    if client is None:
                        client = clients[member.endpoint] = Client([member.endpoint], timeout=1.0)
                    try:
                        st = client.status()
                    except Exception:  # noqa: BLE001 - down, starting, or busy
                        continue
                    if st.leader and st.raft_term > term_before:
                        event["new_leader_at"] = self.now()
                        event["new_leader"] = self.ids.get(st.leader, f"{st.leader:x}")
                        event["new_term"] = st.raft_term
                        return
                stop.wait(0.1)
        finally:
            for client in clients.values():
                client.close()

    def paused_names(self) -> set[str]:
        members = self.cluster.members
        return {members[i].name for i in self.paused if i < len(members)}

    # ---- targets and recovery ----

    def _index(self, p: Planned, leader: int) -> int:
        n = len(self.cluster.members)
        if p.target == "leader":
            return leader
        if p.target == "member":
            return p.index % n
        if p.target == "follower":
            followers = [i for i in range(n) if i != leader]
            return followers[p.index % len(followers)]
        raise ValueError(f"{p.kind} has no single target ({p.target})")

    def _name(self, i: int, leader: int) -> str:
        return f"{self.cluster.members[i].name}{' (leader)' if i == leader else ''}"

    def _safety_net(self, event: dict) -> None:
        """Whatever the fault left undone (after an error): no wrapper, clocks
        back, partition healed, members resumed and started."""
        c = self.cluster
        c.wrapper = list(self.base_wrapper)
        if self.clocks is not None:
            self.clocks.reset()
        leftovers = []
        if partition.proxy_of(c).down:
            leftovers.append("partition")
        leftovers += [f"paused {c.members[i].name}" for i in self.paused if i < len(c.members)]
        leftovers += [f"stopped {m.name}" for m in c.members if not m.running and m.process is not None]
        try:
            FaultRunner.heal(self)
        except Exception as e:  # noqa: BLE001
            event.setdefault("heal_error", repr(e))
        if leftovers:
            event["healed_by_safety_net"] = leftovers

    def _wait_healthy(self, event: dict) -> None:
        """Until every member serves and all agree on a leader; notes
        ``healthy_at``, or ``restart_failed`` / ``not_recovered``."""
        c = self.cluster
        deadline = time.monotonic() + RECOVERY_TIMEOUT
        failed: dict = {}
        for i, member in enumerate(c.members):
            why = kill_main._wait_serving(c, i, max(1.0, deadline - time.monotonic()))
            if why is not None:
                failed[member.name] = {"error": why, "log_tail": kill_main._log_tail(member.log_path, 20)}
        if failed:
            event["restart_failed"] = failed
            event["healthy_at"] = None
            self.log(f"  {self.now():.1f}s: NOT RECOVERED: "
                     + "; ".join(f"{n}: {f['error']}" for n, f in failed.items()) + " - no further faults")
            return
        try:
            leader = c.leader_index(timeout=max(1.0, deadline - time.monotonic()))
        except TimeoutError as e:
            event["not_recovered"] = str(e)
            event["healthy_at"] = None
            self.log(f"  {self.now():.1f}s: NOT RECOVERED: {e} - no further faults")
            return
        event["healthy_at"] = self.now()
        event["leader_after"] = c.members[leader].name
        try:
            event["term_after"] = c.member_status(leader, timeout=5).raft_term
        except Exception:  # noqa: BLE001 - only a figure
            pass

    # ---- the kinds: each fills ``event`` (member, at, recovered_at) ----

    def _kill(self, p: Planned, event: dict, leader: int) -> None:
        c = self.cluster
        i = self._index(p, leader)
        event["member"] = c.members[i].name
        event["at"] = self.now()
        c.kill(i)
        self.log(f"  {event['at']:.1f}s: kill -9 {self._name(i, leader)}")
        self._sleep_until(event["at"] + p.window)
        c.start_member(i)
        event["recovered_at"] = self.now()
        self.log(f"  {event['recovered_at']:.1f}s: restarted {c.members[i].name}")

    def _pause(self, p: Planned, event: dict, leader: int) -> None:
        c = self.cluster
        i = self._index(p, leader)
        event["member"] = c.members[i].name
        event["at"] = self.now()
        self.paused.add(i)
        c.pause(i)
        self.log(f"  {event['at']:.1f}s: SIGSTOP {self._name(i, leader)}")
        self._sleep_until(event["at"] + p.window)
        c.resume(i)
        self.paused.discard(i)
        event["recovered_at"] = self.now()
        self.log(f"  {event['recovered_at']:.1f}s: SIGCONT {c.members[i].name}")

    def _cut(self, p: Planned, event: dict, leader: int, oneway: bool) -> None:
        c = self.cluster
        proxy = partition.proxy_of(c)
        i = self._index(p, leader)
        names = [m.name for m in c.members]
        event["member"] = names[i]
        event["at"] = self.now()
        proxy.cut(partition.cut_links(names, names[i], oneway))
        self.log(f"  {event['at']:.1f}s: partition {self._name(i, leader)} from every other member, "
                 f"{'its messages lost, it still hears them' if oneway else 'both ways'}")
        self._sleep_until(event["at"] + p.window)
        proxy.heal()
        event["recovered_at"] = self.now()
        self.log(f"  {event['recovered_at']:.1f}s: partition of {names[i]} healed")

    def _partition(self, p: Planned, event: dict, leader: int) -> None:
        self._cut(p, event, leader, oneway=False)

    def _partition_oneway(self, p: Planned, event: dict, leader: int) -> None:
        self._cut(p, event, leader, oneway=True)

    def _restart_all(self, p: Planned, event: dict, leader: int) -> None:
        c = self.cluster
        event["member"] = "all"
        event["at"] = self.now()
        for i in range(len(c.members)):
            c.kill(i)
        self.log(f"  {event['at']:.1f}s: kill -9 every member")
        self._sleep_until(event["at"] + p.window)
        for i in range(len(c.members)):
            c.start_member(i)
        event["recovered_at"] = self.now()
        self.log(f"  {event['recovered_at']:.1f}s: started every member")

    def _member_replace(self, p: Planned, event: dict, leader: int) -> None:
        c = self.cluster
        victim = self._index(p, leader)
        old = c.members[victim]
        before = self.clocks.attach if self.clocks is not None else None
        try:
            replace_follower(self, leader, event, victim=victim, before_start=before)
        except Exception:
            self._forget_if_removed(old)   # not to be restarted by the safety net: it would refuse
            raise
        finally:
            self.ids = kill_main._member_ids(c)

    def _forget_if_removed(self, old) -> None:
        """After a failed replacement: if ``old`` was removed all the same, retire it."""
        from raftkv.client.remote import Client

        c = self.cluster
        if old not in c.members:
            return
        others = [m.endpoint for m in c.members if m is not old and m.running]
        try:
            with Client(others, timeout=5) as admin:
                gone = not any(old.peer_url in m.peer_urls for m in admin.members())
        except Exception:  # noqa: BLE001 - unknown: leave it
            return
        if gone:
            c.retire(c.members.index(old))

    def _slow_disk(self, p: Planned, event: dict, leader: int) -> None:
        c = self.cluster
        i = self._index(p, leader)
        name = c.members[i].name
        event["member"] = name
        delay = p.params["fsync_delay_ms"]
        wrapper = strace_wrapper(delay)
        event["at"] = self.now()
        c.kill(i)
        c.wrapper = [*self.base_wrapper, *wrapper]
        try:
            c.start_member(i)
        finally:
            c.wrapper = list(self.base_wrapper)
        self.log(f"  {event['at']:.1f}s: {self._name(i, leader)} killed and restarted under strace: "
                 f"every fsync {delay:g} ms slower for {p.window:g} s")
        event["under_strace"] = self._traced(c.members[i].process.pid)
        self._sleep_until(event["at"] + p.window)
        self._kill_traced(i)
        c.start_member(i)
        event["recovered_at"] = self.now()
        self.log(f"  {event['recovered_at']:.1f}s: {name} killed and restarted without strace")

    def _kill_traced(self, i: int, patience: float = 10.0) -> None:
        """kill -9 of a member running under strace, and wait until the
        server itself is gone too: the cluster waits for strace (its child)
        only, and a server still dying holds its ports (a restart right away
        failed with "bind: address already in use")."""
        c = self.cluster
        member = c.members[i]
        inner = kill_main._identify(kill_main.children(member.process.pid)) if member.running else []
        c.kill(i)
        deadline = time.monotonic() + patience
        while any(kill_main.alive(q) for q in inner) and time.monotonic() < deadline:
            time.sleep(0.01)

    @staticmethod
    def _traced(strace_pid: int, patience: float = 5.0) -> bool:
        """Whether the process strace started runs traced by it."""
        deadline = time.monotonic() + patience
        while time.monotonic() < deadline:
            for child in kill_main.children(strace_pid):
                try:
                    with open(f"/proc/{child}/status") as f:
                        tracer = [line for line in f if line.startswith("TracerPid:")]
                except OSError:
                    continue
                if tracer and int(tracer[0].split()[1]) == strace_pid:
                    return True
            time.sleep(0.05)
        return False

    def _kill_main_only(self, p: Planned, event: dict, leader: int) -> None:
        c = self.cluster
        i = self._index(p, leader)
        member = c.members[i]
        event["member"] = member.name
        pid = member.process.pid
        wait = min(SNAPSHOT_WAIT, self.end - p.window - self.now()) if self.s.system == "raftkv" else 0.0
        deadline = time.monotonic() + max(0.0, wait)
        kids = kill_main.children(pid)
        while not kids and time.monotonic() < deadline:
            time.sleep(kill_main.POLL)
            kids = kill_main.children(pid)
        orphans = kill_main._identify(kids)
        event["at"] = self.now()
        os.kill(pid, signal.SIGKILL)      # this process only, not its group
        member.process.wait(timeout=10)
        self.orphans += orphans
        event["snapshot_child_running"] = bool(orphans)
        event["children_at_kill"] = kids
        self.log(f"  {event['at']:.1f}s: kill -9 of the main process of {self._name(i, leader)}, "
                 + (f"snapshot child {kids} running" if orphans else "no snapshot child running"))
        self._sleep_until(event["at"] + p.window)
        event["children_alive_at_restart"] = [q for q, t in orphans if kill_main.alive((q, t))]
        c.start_member(i)
        event["recovered_at"] = self.now()
        self.log(f"  {event['recovered_at']:.1f}s: restarted {member.name}")

    def _clock_jump(self, p: Planned, event: dict, leader: int) -> None:
        c = self.cluster
        targets = list(range(len(c.members))) if p.target == "all" else [self._index(p, leader)]
        names = [c.members[i].name for i in targets]
        event["member"] = "all" if p.target == "all" else names[0]
        offset = p.params["offset_s"]
        if self.clocks is None:   # etcd (or no shim): nothing is done, and said so
            event["applicable"] = False
            event["not_applicable"] = getattr(c, "wall_clock_note", None) or "no wall clock shim"
            event["skipped_at"] = self.now()
            self.log(f"  {event['skipped_at']:.1f}s: clock jump of {', '.join(names)} by {offset:+d} s: "
                     "not applicable")
            self._sleep_until(event["skipped_at"] + p.window)
            event["skipped_until"] = self.now()
            return
        event["shim_loaded"] = all(self.clocks.loaded_in(c.members[i].process.pid) for i in targets)
        event["at"] = self.now()
        for name in names:
            self.clocks.set(name, offset)
        self.log(f"  {event['at']:.1f}s: wall clock of {', '.join(names)} stepped {offset:+d} s")
        self._sleep_until(event["at"] + p.window)
        for name in names:
            self.clocks.set(name, 0)
        event["recovered_at"] = self.now()
        self.log(f"  {event['recovered_at']:.1f}s: wall clock of {', '.join(names)} stepped back")

    def heal(self) -> None:
        self.cluster.wrapper = list(self.base_wrapper)
        if self.clocks is not None:
            self.clocks.reset()
        super().heal()


# ---- results ------------------------------------------------------------------------------

_CORE = ("fault", "member", "at", "recovered_at", "planned_at")


def injected(events: list[dict]) -> list[dict]:
    """The result's ``faults_injected``: one row per fault, its particulars in ``details``."""
    rows = []
    for e in events:
        if e.get("fault") == "nemesis":   # the nemesis itself failed: in result["nemesis"]["errors"]
            continue
        at = e.get("at", e.get("skipped_at"))
        healed = e.get("recovered_at", e.get("skipped_until"))
        rows.append({"kind": e.get("fault"), "member": e.get("member"),
                     "at_s": round(at, 3) if isinstance(at, float) else at,
                     "healed_at_s": round(healed, 3) if isinstance(healed, float) else healed,
                     "planned_at_s": e.get("planned_at"),
                     "details": {k: v for k, v in e.items() if k not in _CORE}})
    return rows


def summary(result: dict) -> dict:
    """Per kind: how many injected, the longest unavailability, checks are the run's."""
    kinds: dict[str, dict] = {}
    for row in result.get("faults_injected", []):
        k = kinds.setdefault(row["kind"], {"count": 0, "max_unavailable_s": None, "not_applicable": 0})
        k["count"] += 1
        if row["details"].get("applicable") is False:
            k["not_applicable"] += 1
        u = row["details"].get("unavailable_s")
        if u is not None and (k["max_unavailable_s"] is None or u > k["max_unavailable_s"]):
            k["max_unavailable_s"] = u
    return kinds
