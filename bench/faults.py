"""Faults injected into a running cluster, and how long service was gone."""

from __future__ import annotations

import os
import random
import signal
import threading
import time

from bench import kill_main, partition
from bench.membership import replace_follower
from bench.scenario import Log, Scenario


class FaultRunner:
    def __init__(self, scenario: Scenario, cluster, t0: float, log: Log) -> None:
        self.s = scenario
        self.cluster = cluster
        self.t0 = t0
        self.log = log
        self.events: list[dict] = []
        self.paused: set[int] = set()
        self.orphans: list[tuple[int, int]] = []   # (pid, start time): children left by kill-main-only
        self.thread = threading.Thread(target=self._run, daemon=True, name="bench-fault")
        self.rng = random.Random(scenario.seed)
        self.done = threading.Event()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            self._inject()
        except Exception as e:  # noqa: BLE001
            self.events.append({"fault": self.s.fault, "error": repr(e)})
            self.log(f"fault {self.s.fault} failed: {e!r}")
        finally:
            self.done.set()

    def _new_leader(self, exclude: set[int], old: int | None) -> tuple[float | None, int | None]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                i = self.cluster.leader_index(timeout=2, exclude=exclude)
            except TimeoutError:
                continue
            if old is None or i != old:
                return self.now(), i
            time.sleep(0.05)
        return None, None

    def note_new_leader(self, event: dict, exclude: set[int], old: int | None) -> None:
        """Wait for a leader other than ``old`` among the members not in
        ``exclude``; note when, and which, in ``event``."""
        t, new = self._new_leader(exclude, old)
        event["new_leader_at"] = t
        event["new_leader"] = self.cluster.members[new].name if new is not None else None

    def _inject(self) -> None:
        s, c = self.s, self.cluster
        at = s.fault_at if s.fault_at is not None else s.duration / 3
        time.sleep(max(0.0, at - self.now()))
        if s.fault == "none":
            return
        if s.fault in kill_main.KILL_MAIN_FAULTS:   # rounds, one event each
            kill_main.inject(self)
            return
        leader = c.leader_index(timeout=10)
        n = len(c.members)
        event: dict = {"fault": s.fault, "leader_before": c.members[leader].name}
        if s.fault == "slow-disk":   # in place from the start (see make_cluster)
            event.update(member="all", fsync_delay_ms=s.fsync_delay_ms)
            self.events.append(event)
            return
        if s.fault in ("kill-leader", "kill-follower", "kill-random"):
            victim = {"kill-leader": leader, "kill-follower": (leader + 1) % n,
                      "kill-random": self.rng.randrange(n)}[s.fault]
            event["member"] = c.members[victim].name
            event["at"] = self.now()
            c.kill(victim)
            self.log(f"  {event['at']:.1f}s: kill -9 {c.members[victim].name}"
                     f"{' (leader)' if victim == leader else ''}")
            if victim == leader:
                self.note_new_leader(event, {victim}, leader)
            time.sleep(max(0.0, event["at"] + s.fault_delay - self.now()))
            c.start_member(victim)
            event["recovered_at"] = self.now()
            self.log(f"  {event['recovered_at']:.1f}s: restarted {c.members[victim].name}")
        elif s.fault == "pause-leader":
            event["member"] = c.members[leader].name
            event["at"] = self.now()
            c.pause(leader)
            self.paused.add(leader)
            self.log(f"  {event['at']:.1f}s: SIGSTOP {c.members[leader].name} (leader)")
            self.note_new_leader(event, {leader}, leader)
            time.sleep(max(0.0, event["at"] + s.fault_delay - self.now()))
            c.resume(leader)
            self.paused.discard(leader)
            event["recovered_at"] = self.now()
            self.log(f"  {event['recovered_at']:.1f}s: SIGCONT {c.members[leader].name}")
        elif s.fault == "restart-all":
            event["member"] = "all"
            event["at"] = self.now()
            for i in range(n):
                c.kill(i)
            self.log(f"  {event['at']:.1f}s: kill -9 every member")
            time.sleep(max(0.0, event["at"] + min(s.fault_delay, 1.0) - self.now()))
            for i in range(n):
                c.start_member(i)
            event["recovered_at"] = self.now()
            self.log(f"  {event['recovered_at']:.1f}s: started every member")
            self.note_new_leader(event, set(), None)
        elif s.fault == "member-replace":
            replace_follower(self, leader, event)
        elif s.fault in partition.PARTITION_FAULTS:
            partition.partition(self, leader, event)
        else:
            raise ValueError(f"unknown fault {s.fault!r}")
        if event.get("new_leader_at") is not None:
            event["time_to_leader_s"] = round(event["new_leader_at"] - event["at"], 3)
        self.events.append(event)

    def heal(self) -> None:
        """Whatever the fault left undone: heal, resume, restart (after
        killing any snapshot child a kill-main fault left running)."""
        for pid, started in self.orphans:
            if kill_main.alive((pid, started)):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        partition.heal(self.cluster)
        for i in list(self.paused):
            self.cluster.resume(i)
        self.paused.clear()
        for i, m in enumerate(self.cluster.members):
            if not m.running:
                self.cluster.start_member(i)


def unavailability(ok_returns: list[float], fault_at: float, end: float, window: float) -> dict:
    """The longest stretch without a successful response around a fault:
    from the last success before the gap to the first success after it
    (None if service never came back before the run ended)."""
    import bisect

    times = sorted(ok_returns)
    i = bisect.bisect_right(times, fault_at)
    last_before = times[i - 1] if i > 0 else 0.0
    after = [t for t in times[i:] if t <= fault_at + window]
    if not after:
        return {"unavailable_s": round(end - last_before, 3), "last_success_before": round(last_before, 3),
                "first_success_after": None}
    best = (after[0] - last_before, last_before, after[0])
    prev = after[0]
    for t in after[1:]:
        if t - prev > best[0]:
            best = (t - prev, prev, t)
        prev = t
    return {"unavailable_s": round(best[0], 3), "last_success_before": round(best[1], 3),
            "first_success_after": round(best[2], 3)}
