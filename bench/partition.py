"""Network partitions: a member cut off from the others by the peer proxy (bench.proxy).

- ``partition-leader``: the leader neither sends to nor hears from any other member;
- ``partition-leader-oneway``: whatever the leader sends is lost, it still hears the others;
- ``partition-follower``: one follower cut off both ways.

The cut starts at the scenario's ``fault_at`` and is healed ``fault_delay``
seconds later. Clients still reach every member: only peer traffic is cut.
"""

from __future__ import annotations

import time

PARTITION_FAULTS = ("partition-leader", "partition-leader-oneway", "partition-follower")


def cut_links(names: list[str], victim: str, oneway: bool = False) -> set[tuple[str, str]]:
    """The directed links (src, dst) to cut to isolate ``victim``: what it
    sends, and unless ``oneway`` what it would receive."""
    links = {(victim, other) for other in names if other != victim}
    if not oneway:
        links |= {(other, victim) for other in names if other != victim}
    return links


def proxy_of(cluster):
    proxy = getattr(cluster, "peer_proxy", None)
    if proxy is None:
        raise RuntimeError("a partition needs a cluster made with a peer proxy (see bench.harness.make_cluster)")
    return proxy


def partition(runner, leader: int, event: dict) -> None:
    """Inject the partition fault of ``runner`` (a bench.faults.FaultRunner),
    filling ``event``: who, when, the new leader when one is expected, when healed."""
    s, c = runner.s, runner.cluster
    proxy = proxy_of(c)
    n = len(c.members)
    victim = (leader + 1) % n if s.fault == "partition-follower" else leader
    oneway = s.fault == "partition-leader-oneway"
    names = [m.name for m in c.members]
    name = names[victim]
    role = "leader" if victim == leader else "follower"
    event["member"] = name
    event["at"] = runner.now()
    proxy.cut(cut_links(names, name, oneway))
    runner.log(f"  {event['at']:.1f}s: partition {name} ({role}) from every other member, "
               f"{'its messages lost, it still hears them' if oneway else 'both ways'}")
    if victim == leader:
        runner.note_new_leader(event, {victim}, leader)
        if event["new_leader_at"] is not None:
            runner.log(f"  {event['new_leader_at']:.1f}s: new leader {event['new_leader']}")
    time.sleep(max(0.0, event["at"] + s.fault_delay - runner.now()))
    proxy.heal()
    event["recovered_at"] = runner.now()
    runner.log(f"  {event['recovered_at']:.1f}s: partition of {name} healed")


def heal(cluster) -> None:
    """Whatever is still cut, healed (a no-op for a cluster without a proxy)."""
    proxy = getattr(cluster, "peer_proxy", None)
    if proxy is not None and proxy.down:
        proxy.heal()
