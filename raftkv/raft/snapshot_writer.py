"""Writing a snapshot in a forked child, which dies with its parent.

The child sees the state as it was at the fork (copy-on-write), so the
member goes on applying while the file is written. The child:

- asks the kernel to kill it when its parent dies (PR_SET_PDEATHSIG), so a
  ``kill -9`` of the member leaves no writer behind to finish a snapshot
  for a log that was never trimmed, or to hold the member's ports;
- closes every inherited descriptor (listening sockets included) before it
  writes anything;
- writes to a name of its own and fsyncs; only the parent, once the child
  has exited cleanly, renames the file into place.

One writer at a time: ``start`` refuses while a child runs.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import signal
from collections.abc import Callable
from enum import Enum

from raftkv.raft.collector import freeze_before_fork, thaw_after_fork

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
try:
    _libc: ctypes.CDLL | None = ctypes.CDLL(None, use_errno=True)
except OSError:  # not Linux: no parent-death signal, the child only checks its parent
    _libc = None


class WriterState(Enum):
    IDLE = "idle"
    WRITING = "writing"
    DONE = "done"
    FAILED = "failed"


def _die_with_parent(parent: int) -> None:
    if _libc is not None:
        _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before the signal was armed
        os._exit(1)


class SnapshotWriter:
    def __init__(self) -> None:
        self._pid = 0
        self.path: str | None = None  # the file being (or just) written

    @property
    def busy(self) -> bool:
        return self._pid != 0

    def start(self, path: str, write: Callable[[str], None]) -> bool:
        """Fork a child that calls ``write(path)`` and exits; False if one runs."""
        if self._pid:
            return False
        parent = os.getpid()
        freeze_before_fork()
        pid = os.fork()
        if pid == 0:  # the child: never returns
            status = 1
            try:
                _die_with_parent(parent)
                # background work: the members' own threads (and the other
                # members' on this machine) go first, or every member that
                # snapshots at the same index stalls its ticks at once
                os.nice(19)
                gc.disable()
                os.closerange(3, os.sysconf("SC_OPEN_MAX"))
                write(path)
                status = 0
            except BaseException:  # noqa: BLE001 - nothing may escape a forked child
                status = 1
            finally:
                os._exit(status)
        self._pid = pid
        self.path = path
        log.info("snapshot writer started pid=%d path=%s", pid, path)
        return True

    def poll(self) -> WriterState:
        """DONE or FAILED once (the child has exited), WRITING while it runs."""
        if not self._pid:
            return WriterState.IDLE
        try:
            pid, status = os.waitpid(self._pid, os.WNOHANG)
        except ChildProcessError:
            pid, status = self._pid, -1
        if pid == 0:
            return WriterState.WRITING
        self._pid = 0
        thaw_after_fork()
        if status == 0:
            return WriterState.DONE
        log.warning("snapshot writer failed path=%s status=%d", self.path, status)
        return WriterState.FAILED

    def abandon(self) -> None:
        """Stop a running child (the member is closing)."""
        if self._pid:
            try:
                os.kill(self._pid, signal.SIGKILL)
                os.waitpid(self._pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self._pid = 0
            thaw_after_fork()
