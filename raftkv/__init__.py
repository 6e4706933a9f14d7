"""raftkv: an etcd-compatible key-value store for Python.

    import raftkv
    kv = raftkv.open()
    kv.put("greeting", "hello")
    kv.get("greeting").value    # b"hello"
"""

__version__ = "0.1.0"

import os as _os  # noqa: E402

# A member forks to write Raft snapshots while gRPC threads run. gRPC's fork
# handlers make such children crash now and then (SIGSEGV, seen here); the
# child never uses gRPC, so the handlers are not needed. Read at grpc import.
_os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")
# gRPC's core logs informational lines (a failed TLS handshake, ...) to stderr
# on its own; raftkv reports errors itself.
_os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

from raftkv import errors  # noqa: E402
from raftkv.client import ops  # noqa: E402
from raftkv.client.api import KVClient, Lease, LeaseTTL, Status, TxnBuilder, Watch  # noqa: E402
from raftkv.client.embedded import EmbeddedStore  # noqa: E402
from raftkv.client.remote import Client  # noqa: E402
from raftkv.client.ops import create_revision, lease, mod_revision, value, version  # noqa: E402
from raftkv.errors import RaftKVError  # noqa: E402
from raftkv.mvcc import (  # noqa: E402
    DeleteRangeResponse,
    Event,
    EventType,
    KeyValue,
    PutResponse,
    RangeResponse,
    SortOrder,
    SortTarget,
    StoreLimits,
    TxnResponse,
    WatchResponse,
)


def open(path: str | None = None, *, limits: StoreLimits | None = None, **options):  # noqa: A001
    """A single-member store in this process.

    Without ``path``: in memory, ready at once (an EmbeddedStore; ``options``
    are its). With ``path``: durable, a one-member raftkv.Node whose data
    directory is ``path`` — the same code path as a cluster member, so every
    acknowledged write is fsynced and survives kill -9 and power loss.
    """
    if path is None:
        return EmbeddedStore(limits, **options)
    from raftkv.client.node import open_durable

    return open_durable(path, limits, **options)


def __getattr__(name: str):
    if name == "Node":  # imported on first use: it brings in the Raft engine
        from raftkv.client.node import Node

        return Node
    raise AttributeError(f"module 'raftkv' has no attribute {name!r}")


__all__ = [
    "Client", "Node", "DeleteRangeResponse", "EmbeddedStore", "Event", "EventType", "KVClient", "KeyValue", "Lease",
    "LeaseTTL", "PutResponse", "RaftKVError", "RangeResponse", "SortOrder", "SortTarget", "Status",
    "StoreLimits", "TxnBuilder", "TxnResponse", "Watch", "WatchResponse", "create_revision",
    "errors", "lease", "mod_revision", "open", "ops", "value", "version",
]
