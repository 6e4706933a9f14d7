"""Crash points for tests, in the manner of etcd's gofail.

    RAFTKV_FAILPOINTS="journal-after-sync:3,snapshot-mid-write"

kills this process with SIGKILL the N-th time (default: the first) it
passes a named point, as a power cut or ``kill -9`` at exactly that moment
would. ``name=sleep(MS)`` instead holds the thread that passes the point for
MS milliseconds, every time (a slow disk or a large state, at that moment).
Unset, a point costs one dict lookup. The points:

    journal-before-write       log entries about to be written
    journal-before-sync        written, not yet fsynced
    journal-after-sync         fsynced, nothing acknowledged yet
    snapshot-mid-write         the snapshot child is writing
    snapshot-before-install    the child has written it, not yet renamed into place
    snapshot-before-trim       renamed into place, the log not yet trimmed
    apply-before-response      a request applied, its response not yet given
    membership-change          a configuration change being applied
    received-snapshot-loading          a leader's snapshot received, its state being loaded (off the tick)
    received-snapshot-before-install   a leader's snapshot received and loaded, not installed
    received-snapshot-before-trim      installed, the log not yet restarted from it
"""

from __future__ import annotations

import logging
import os
import re
import signal
import time

log = logging.getLogger(__name__)

ENV = "RAFTKV_FAILPOINTS"

POINTS = frozenset({
    "journal-before-write", "journal-before-sync", "journal-after-sync",
    "snapshot-mid-write", "snapshot-before-install", "snapshot-before-trim",
    "apply-before-response", "membership-change",
    "received-snapshot-loading", "received-snapshot-before-install", "received-snapshot-before-trim",
})
_SLEEP = re.compile(r"sleep\((\d+)\)")


def parse_setting(text: str) -> tuple[dict[str, int], dict[str, float]]:
    """The points that kill (name -> the pass that kills) and those that sleep (name -> seconds)."""
    armed: dict[str, int] = {}
    sleeps: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        if "=" in part:
            name, _, action = part.partition("=")
            sleep = _SLEEP.fullmatch(action)
            if sleep is None:
                raise ValueError(f"{ENV}: unknown action {action!r} of {name!r} (known: sleep(MS))")
            sleeps[name] = int(sleep.group(1)) / 1000
        else:
            name, _, count = part.partition(":")
            armed[name] = int(count) if count else 1
        if name not in POINTS:
            raise ValueError(f"{ENV}: unknown failpoint {name!r} (known: {', '.join(sorted(POINTS))})")
    return armed, sleeps


_armed, _sleeps = parse_setting(os.environ.get(ENV, ""))


def hit(name: str) -> None:
    if not (_armed or _sleeps):
        return
    pause = _sleeps.get(name)
    if pause is not None:
        log.warning("failpoint reached, sleeping name=%s seconds=%.3f", name, pause)
        time.sleep(pause)
    left = _armed.get(name)
    if left is None:
        return
    _armed[name] = left - 1
    if left <= 1:
        log.critical("failpoint reached, killing this process name=%s pid=%d", name, os.getpid())
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
