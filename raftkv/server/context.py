"""What every servicer shares: the store it serves, response headers, error mapping."""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass

import grpc

from raftkv.client.api import KVClient
from raftkv.errors import RaftKVError
from raftkv.mvcc.store import KVStore
from raftkv.wire import ResponseHeader

log = logging.getLogger(__name__)


@dataclass
class ServerContext:
    kv: KVClient
    cluster_id: int
    member_id: int
    name: str
    client_urls: list[str]
    peer_urls: list[str]

    def header(self) -> ResponseHeader:
        return ResponseHeader(cluster_id=self.cluster_id, member_id=self.member_id, raft_term=self.kv.raft_term())

    def local_store(self) -> contextlib.AbstractContextManager[KVStore | None]:
        """This member's own KV store, held under its lock for the ``with``
        block; None when the store is reachable only through requests."""
        return self.kv.local_store()


def grpc_errors(method):
    """Turn raftkv's typed errors into etcd's gRPC status codes and messages."""

    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except RaftKVError as e:
            context.abort(getattr(grpc.StatusCode, e.grpc_code), str(e))
        except grpc.RpcError:
            raise
        except Exception as e:  # never crash the member on a request
            log.exception("request failed method=%s", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"raftkv: internal error: {e}")

    return wrapper
