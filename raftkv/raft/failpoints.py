"""Crash points for tests, in the manner of etcd's gofail.

    RAFTKV_FAILPOINTS="journal-after-sync:3,snapshot-mid-write"

kills this process with SIGKILL the N-th time (default: the first) it
passes a named point, as a power cut or ``kill -9`` at exactly that moment
would. Unset, a point costs one dict lookup. The points:

    journal-before-write       log entries about to be written
    journal-before-sync        written, not yet fsynced
    journal-after-sync         fsynced, nothing acknowledged yet
    snapshot-mid-write         the snapshot child is writing
    snapshot-before-install    the child has written it, not yet renamed into place
    snapshot-before-trim       renamed into place, the log not yet trimmed
    apply-before-response      a request applied, its response not yet given
    membership-change          a configuration change being applied
    received-snapshot-before-install   a leader's snapshot received and checked, not installed
    received-snapshot-before-trim      installed, the log not yet restarted from it
"""

from __future__ import annotations

import logging
import os
import signal

log = logging.getLogger(__name__)

ENV = "RAFTKV_FAILPOINTS"

POINTS = frozenset({
    "journal-before-write", "journal-before-sync", "journal-after-sync",
    "snapshot-mid-write", "snapshot-before-install", "snapshot-before-trim",
    "apply-before-response", "membership-change",
    "received-snapshot-before-install", "received-snapshot-before-trim",
})


def _parse(text: str) -> dict[str, int]:
    armed: dict[str, int] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, count = part.partition(":")
        if name not in POINTS:
            raise ValueError(f"{ENV}: unknown failpoint {name!r} (known: {', '.join(sorted(POINTS))})")
        armed[name] = int(count) if count else 1
    return armed


_armed = _parse(os.environ.get(ENV, ""))


def hit(name: str) -> None:
    if not _armed:
        return
    left = _armed.get(name)
    if left is None:
        return
    _armed[name] = left - 1
    if left <= 1:
        log.critical("failpoint reached, killing this process name=%s pid=%d", name, os.getpid())
        for handler in logging.getLogger().handlers:
            handler.flush()
        os.kill(os.getpid(), signal.SIGKILL)
