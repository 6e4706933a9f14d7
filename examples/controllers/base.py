"""A level-triggered controller: any change its informers see wakes it,
and it reconciles everything it owns from fresh reads, every few seconds
at the latest."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from examples.controllers.informer import Informer

log = logging.getLogger(__name__)

RESYNC_SECONDS = 5.0


class Controller(threading.Thread):
    def __init__(self, watched: list[Callable], stop: threading.Event) -> None:
        super().__init__(daemon=True, name=type(self).__name__)
        self._stop = stop
        self._wake = threading.Event()
        self._informers = [Informer(list_fn, self._wake.set, stop) for list_fn in watched]

    def reconcile(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        for informer in self._informers:
            informer.start()
        while not self._stop.is_set():
            self._wake.wait(RESYNC_SECONDS)
            self._wake.clear()
            try:
                self.reconcile()
            except Exception:  # the next change or resync tries again
                log.exception("reconcile failed controller=%s", type(self).__name__)
                self._stop.wait(0.5)


def owned_by(obj, owner) -> bool:
    return any(ref.uid == owner.metadata.uid and ref.controller for ref in obj.metadata.owner_references or [])


def controller_ref(owner, api_version: str, kind: str) -> dict:
    return {"apiVersion": api_version, "kind": kind, "name": owner.metadata.name, "uid": owner.metadata.uid,
            "controller": True, "blockOwnerDeletion": True}


def selector_text(match_labels: dict[str, str] | None) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted((match_labels or {}).items()))
