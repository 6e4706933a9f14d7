"""The cyclic garbage collector in a member's process.

A full collection walks every object the collector tracks, and the store
holds several per key (its versions, its history, the index's entry): at
fifty thousand keys a pass already held the GIL for hundreds of milliseconds,
and every request waited for it. A server therefore freezes (``gc.freeze``)
what survives each full collection: such objects are long-lived, and the
next full pass walks only what came after. The price is that a cycle among
frozen objects that later becomes garbage is not reclaimed; the state that
lives this long (keys, histories, leases, members) holds no cycles.

Only a server turns this on: an embedding application keeps Python's
collector as it set it."""

from __future__ import annotations

import gc
import logging
import time

log = logging.getLogger(__name__)

SLOW_COLLECTION = 0.05  # seconds: a pass this long is logged

_state = {"began": 0.0, "freezing": False}


def _on_collection(phase: str, info: dict) -> None:
    if phase == "start":
        _state["began"] = time.perf_counter()
        return
    took = time.perf_counter() - _state["began"]
    if took > SLOW_COLLECTION:
        log.warning("slow garbage collection took_ms=%d generation=%d collected=%d frozen=%d",
                    took * 1000, info["generation"], info["collected"], gc.get_freeze_count())
    if _state["freezing"] and info["generation"] == 2:
        gc.freeze()


def watch_collections(freeze_survivors: bool) -> None:
    """Log slow collections; with ``freeze_survivors``, freeze what each full
    collection leaves (for the rest of the process's life)."""
    _state["freezing"] = _state["freezing"] or freeze_survivors
    if _on_collection not in gc.callbacks:
        gc.callbacks.append(_on_collection)
    if freeze_survivors:
        gc.collect()  # the start-up state: loaded, long-lived, frozen from here on


def freeze_before_fork() -> None:
    """A forked child reads the parent's objects; the parent's collections
    would touch (and so copy) every page holding one. Frozen objects are left
    alone until ``thaw_after_fork``."""
    gc.freeze()


def thaw_after_fork() -> None:
    if not _state["freezing"]:
        gc.unfreeze()


def stop_watching_collections() -> None:
    """Back to Python's collector as it was (frozen objects are thawed)."""
    if _on_collection in gc.callbacks:
        gc.callbacks.remove(_on_collection)
    _state["freezing"] = False
    gc.unfreeze()
