"""Membership change under load: a follower removed, a fresh member added in its place.

The same steps an operator takes with etcdctl (member remove, member add, start
the new member with --initial-cluster-state existing), through etcd's Cluster
API, so they work on raftkv and on etcd alike."""

from __future__ import annotations

import time

from raftkv.client.remote import Client
from raftkv.errors import MemberNotFound, PeerURLExists, Unavailable


def _retrying(change, patience: float = 20.0):
    """etcd refuses a change until the leader has been connected to enough
    members for a while ("etcdserver: unhealthy cluster"); an operator retries."""
    deadline = time.monotonic() + patience
    while True:
        try:
            return change()
        except Unavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _remove(admin: Client, member_id: int, event: dict) -> None:
    """member remove. The admin client has several endpoints and tries the
    next one when a call times out: a removal that timed out on one member
    but went through is then refused by the next with "member not found" -
    what an operator who retried would see. Done if the member is gone."""
    try:
        _retrying(lambda: admin.member_remove(member_id))
    except MemberNotFound:
        if any(m.id == member_id for m in admin.members()):
            raise
        event["remove_answered_member_not_found"] = True   # an earlier attempt took effect


def _add(admin: Client, peer_url: str, event: dict) -> None:
    """member add; as for _remove, "peer URL exists" after a retry means an
    earlier attempt took effect."""
    try:
        _retrying(lambda: admin.member_add([peer_url]))
    except PeerURLExists:
        if not any(peer_url in m.peer_urls for m in admin.members()):
            raise
        event["add_answered_peer_url_exists"] = True


def replace_follower(runner, leader: int, event: dict, victim: int | None = None,
                     before_start=None, catch_up_timeout: float = 60.0) -> None:
    """Remove a follower (``victim``, by default the one after ``leader``), add
    a new member, wait until it has caught up with the revision the cluster had
    when it was added. ``before_start(member)`` is called with the new member
    before it starts (e.g. to give it an environment of its own)."""
    c = runner.cluster
    if victim is None:
        victim = (leader + 1) % len(c.members)
    if victim == leader:
        raise ValueError("the member to replace must be a follower")
    old = c.members[victim]
    event["member"] = old.name
    with Client([m.endpoint for i, m in enumerate(c.members) if i != victim], timeout=5) as admin:
        (old_id,) = [m.id for m in admin.members() if old.peer_url in m.peer_urls]
        event["at"] = runner.now()
        _remove(admin, old_id, event)
        event["removed_at"] = runner.now()
        runner.log(f"  {event['removed_at']:.1f}s: member remove {old.name}")
        c.retire(victim)
        new = c.new_member()
        _add(admin, new.peer_url, event)
        event["added_at"] = runner.now()
        event["new_member"] = new.name
        target = admin.status().revision
    if before_start is not None:
        before_start(new)
    c.start_member(len(c.members) - 1)
    runner.log(f"  {event['added_at']:.1f}s: member add {new.name}, started")
    deadline = time.monotonic() + catch_up_timeout
    with Client([new.endpoint], timeout=2) as newcomer:
        while time.monotonic() < deadline:
            try:
                if newcomer.status().revision >= target:
                    break
            except Exception:  # noqa: BLE001 - not serving yet
                pass
            time.sleep(0.1)
        else:
            raise TimeoutError(f"{new.name} did not reach revision {target} in {catch_up_timeout:.0f} s")
    event["recovered_at"] = runner.now()
    event["caught_up_s"] = round(event["recovered_at"] - event["added_at"], 3)
    runner.log(f"  {event['recovered_at']:.1f}s: {new.name} caught up (revision {target})")
