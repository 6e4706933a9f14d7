"""What every servicer shares: the store it serves, response headers, error mapping."""

from __future__ import annotations

import contextlib
import functools
import logging
from dataclasses import dataclass

import grpc

from raftkv.client.acting import ActingAs
from raftkv.client.api import KVClient
from raftkv.client.passwords import DEFAULT_BCRYPT_COST
from raftkv.errors import RaftKVError
from raftkv.mvcc.auth import InvalidAuthToken, PermissionDenied
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
    bcrypt_cost: int = DEFAULT_BCRYPT_COST
    # how long a write started without a waiting thread may take (a member's request timeout)
    request_timeout: float = 5.0

    def header(self) -> ResponseHeader:
        return ResponseHeader(cluster_id=self.cluster_id, member_id=self.member_id, raft_term=self.kv.raft_term())

    def local_store(self) -> contextlib.AbstractContextManager[KVStore | None]:
        """This member's own KV store, held under its lock for the ``with``
        block; None when the store is reachable only through requests."""
        return self.kv.local_store()

    # ---- auth ------------------------------------------------------------------

    def auth_enabled(self) -> bool:
        with self.local_store() as store:
            return store is not None and store.auth.enabled

    def user(self, context) -> str | None:
        """Who makes a call, as etcd decides it: the user of the call's token
        (metadata "token", or "authorization" from the JSON gateway), else
        the common name of its client certificate; None while auth is off."""
        if not self.auth_enabled():
            return None
        return self._caller(context)

    def _caller(self, context) -> str | None:
        token = _token(context)
        if token:
            user = self.kv.user_for_token(token)
            if user is None:
                raise InvalidAuthToken()
            return user
        names = (context.auth_context() or {}).get("x509_common_name") or []
        return names[0].decode() if names else None

    def kv_for(self, context) -> KVClient:
        """The store, used on behalf of the call's user (as it is while auth is off)."""
        if not self.auth_enabled():
            return self.kv
        return ActingAs(self.kv, self._caller(context), _token(context))

    def check_admin(self, context, error: type[RaftKVError] = PermissionDenied) -> None:
        """etcd's admin check (the root role) for calls that change the cluster or read all of it."""
        user = self.user(context)
        with self.local_store() as store:
            if store is not None:
                store.auth.check_admin(user, error)


def _token(context) -> str | None:
    """The call's auth token: metadata "token", or "authorization" from the JSON gateway."""
    metadata = dict(context.invocation_metadata() or ())
    return metadata.get("token") or metadata.get("authorization") or None


def grpc_errors(method):
    """Turn raftkv's typed errors into etcd's gRPC status codes and messages."""

    @functools.wraps(method)
    def wrapper(self, request, context):
        try:
            return method(self, request, context)
        except RaftKVError as e:
            context.abort(grpc.StatusCode[e.grpc_code], str(e))
        except grpc.RpcError:
            raise
        except Exception as e:  # never crash the member on a request
            log.exception("request failed method=%s", method.__name__)
            context.abort(grpc.StatusCode.INTERNAL, f"raftkv: internal error: {e}")

    return wrapper
