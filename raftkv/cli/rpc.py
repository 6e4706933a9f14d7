"""Raw gRPC access through a ``raftkv.Client``.

The CLI prints etcdctl's output, which needs the whole protobuf response
(headers included) and a few streaming calls the KVClient interface does not
offer (Snapshot, Lock, Election). Everything here goes through the client's
public channels and raw calls (``channel``, ``call``, ``current_index``).
"""

from __future__ import annotations

import time

import grpc

from raftkv.client.remote import Client, typed_error
from raftkv.errors import LeaderChanged, NoLeader, RaftKVError, RequestTimedOut

RETRYABLE = (grpc.StatusCode.UNAVAILABLE,)


def channel(client: Client, index: int | None = None) -> grpc.Channel:
    return client.channel(index)


def current(client: Client) -> int:
    return client.current_index


_STATES = {state.value[0]: state for state in grpc.ChannelConnectivity}


def connectivity(client: Client, index: int) -> grpc.ChannelConnectivity:
    """The state of the channel to one endpoint, asking it to connect.

    Polls grpc's channel (its private ``_channel``): subscribing would leave
    a watcher thread that makes closing the channel take 0.2 s, on every
    command. Falls back to a short subscription if that changes."""
    ch = channel(client, index)
    core = getattr(ch, "_channel", None)
    if core is not None and hasattr(core, "check_connectivity_state"):
        return _STATES.get(int(core.check_connectivity_state(True)), grpc.ChannelConnectivity.IDLE)
    future = grpc.channel_ready_future(ch)
    try:
        future.result(timeout=0.05)
        return grpc.ChannelConnectivity.READY
    except grpc.FutureTimeoutError:
        return grpc.ChannelConnectivity.CONNECTING
    finally:
        future.cancel()


def rotate(client: Client) -> None:
    """Make the next endpoint the one the client tries first."""
    client.rotate()


def call(client: Client, service: str, method: str, message, *, idempotent: bool = False):
    """A unary call with the client's failover and timeout; raises raftkv's typed errors.

    While the cluster elects a leader (a member was just killed) requests
    fail for a moment: "no leader" means the request was not proposed, so it
    is retried (on the next endpoint) for up to the command timeout;
    "leader changed" and "request timed out" leave its fate open, so only
    ``idempotent`` requests (reads, put, delete) are retried on those.
    """
    deadline = time.monotonic() + client.timeout
    delay = 0.1
    while True:
        try:
            return client.call(service, method, message)
        except (NoLeader, LeaderChanged, RequestTimedOut) as e:
            if isinstance(e, (LeaderChanged, RequestTimedOut)) and not idempotent:
                raise
            if time.monotonic() + delay > deadline:
                raise
            rotate(client)
            time.sleep(delay)
            delay = min(delay * 2, 1.0)


def typed(error: grpc.RpcError) -> RaftKVError:
    return typed_error(error)


def endpoint_order(client: Client) -> list[int]:
    """Endpoint indexes, the one the client last used first."""
    n = len(client.endpoints)
    start = current(client) % n
    return [(start + i) % n for i in range(n)]


def call_anywhere(client: Client, stub_class, method: str, message, *, timeout: float | None):
    """A unary call on the first endpoint that answers, with ``timeout``
    (None: wait as long as it takes, for Lock and Campaign)."""
    last: grpc.RpcError | None = None
    for index in endpoint_order(client):
        stub = stub_class(channel(client, index))
        try:
            return getattr(stub, method)(message, timeout=timeout, metadata=client.metadata())
        except grpc.RpcError as e:
            if e.code() in RETRYABLE and len(client.endpoints) > 1:
                last = e
                continue
            raise typed(e) from None
    raise typed(last) from None
