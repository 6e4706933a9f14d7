"""The data the store hands out: key-value versions and watch events."""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class KeyValue:
    """One version of a key, as etcd's mvccpb.KeyValue.

    A deletion is recorded as a *tombstone*: a KeyValue with version 0 that
    carries only the key and the revision of the delete.
    """

    key: bytes
    create_revision: int
    mod_revision: int
    version: int
    value: bytes = b""
    lease: int = 0

    @property
    def is_tombstone(self) -> bool:
        return self.version == 0


class EventType(enum.IntEnum):
    PUT = 0
    DELETE = 1


@dataclass(frozen=True, slots=True)
class Event:
    """A change to one key. For DELETE, ``kv`` is the tombstone."""

    type: EventType
    kv: KeyValue
    prev_kv: KeyValue | None = None


def tombstone(key: bytes, revision: int) -> KeyValue:
    return KeyValue(key=key, create_revision=0, mod_revision=revision, version=0)
