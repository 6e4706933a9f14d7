"""Watchers of the benchmark prefix that resume where they left off."""

from __future__ import annotations

import threading
import time

from bench.checks import Ev
from bench.load import decode
from bench.scenario import PREFIX


def to_event(event) -> Ev:
    kv = event.kv
    if int(event.type) == 1:
        return Ev(kv.mod_revision, kv.key.decode(), "DELETE", None)
    return Ev(kv.mod_revision, kv.key.decode(), "PUT", decode(kv.value))


class Watcher:
    """Watches the prefix from ``start_revision``, resuming on another member
    from the revision after the last one received whenever a stream ends."""

    def __init__(self, clients, first_member: int, start_revision: int, t0: float) -> None:
        self.clients = clients
        self.member = first_member
        self.start_revision = start_revision
        self.next_revision = start_revision
        self.t0 = t0
        self.responses: list[tuple[float, list[Ev]]] = []
        self.resumes = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"bench-watch-{first_member}")
        self.thread.start()

    @property
    def last_revision(self) -> int:
        return self.next_revision - 1

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                w = self.clients[self.member].watch(PREFIX, prefix=True, start_revision=self.next_revision)
            except Exception:
                self.member = (self.member + 1) % len(self.clients)
                self.stop.wait(0.1)
                continue
            try:
                while not self.stop.is_set():
                    r = w.next_response(timeout=0.2)
                    if r is None:
                        if w.canceled:
                            break
                        continue
                    if r.events:
                        evs = [to_event(e) for e in r.events]
                        self.responses.append((time.monotonic() - self.t0, evs))
                        self.next_revision = evs[-1].revision + 1
                    if r.canceled:
                        break
            finally:
                try:
                    w.cancel()
                except Exception:
                    pass
            if not self.stop.is_set():
                self.resumes += 1
                self.member = (self.member + 1) % len(self.clients)
                self.stop.wait(0.05)
