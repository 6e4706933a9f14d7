"""List, then watch from the list's resourceVersion; list again when the
watch ends or its resourceVersion is gone (410). Each change wakes the
controller, which then reconciles from fresh reads."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from kubernetes import watch
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

WATCH_SECONDS = 30


class Informer(threading.Thread):
    def __init__(self, list_fn: Callable, on_change: Callable[[], None], stop: threading.Event) -> None:
        super().__init__(daemon=True, name=f"informer-{list_fn.__name__}")
        self._list = list_fn
        self._on_change = on_change
        self._stop = stop

    def run(self) -> None:
        while not self._stop.is_set():
            try:
                version = self._list().metadata.resource_version
                self._on_change()
                self._follow(version)
            except ApiException as e:
                if e.status != 410:
                    log.warning("list or watch failed call=%s status=%s", self._list.__name__, e.status)
                    self._stop.wait(1.0)
            except Exception as e:  # the apiserver is away: try again shortly
                log.warning("list or watch failed call=%s error=%s", self._list.__name__, e)
                self._stop.wait(1.0)

    def _follow(self, version: str) -> None:
        stream = watch.Watch()
        for event in stream.stream(self._list, resource_version=version, timeout_seconds=WATCH_SECONDS,
                                   allow_watch_bookmarks=True):
            if self._stop.is_set():
                stream.stop()
                return
            if event["type"] == "ERROR":
                return  # 410 Gone and the like: list again
            if event["type"] != "BOOKMARK":
                self._on_change()
