"""Building and running the gRPC server for one member."""

from __future__ import annotations

import asyncio
import logging

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from raftkv._proto.etcdserverpb import rpc_pb2_grpc
from raftkv._proto.raftkvpb import store_pb2_grpc
from raftkv._proto.v3electionpb import v3election_pb2_grpc
from raftkv._proto.v3lockpb import v3lock_pb2_grpc
from raftkv.server.aio import Blocking, Completions, GrpcServer
from raftkv.server.auth import AuthService
from raftkv.server.cluster import ClusterService
from raftkv.server.context import ServerContext
from raftkv.server.decoding import EtcdDecodeErrors
from raftkv.server.election import ElectionService
from raftkv.server.kv import KVService
from raftkv.server.lease import LeaseService
from raftkv.server.lock import LockService
from raftkv.server.maintenance import MaintenanceService
from raftkv.server.metrics import ServerMetrics
from raftkv.server.store import StoreService
from raftkv.server.watch import WatchService

log = logging.getLogger(__name__)

GRPC_OVERHEAD_BYTES = 512 * 1024  # etcd lets a message exceed --max-request-bytes by this much


def build_server(ctx: ServerContext, listen: list[str], max_request_bytes: int,
                 max_workers: int = 512, credentials: grpc.ServerCredentials | None = None,
                 metrics: ServerMetrics | None = None) -> GrpcServer:
    """The member's gRPC server: etcd's KV, Lease, Watch, Maintenance and
    Cluster services, v3lock's Lock, v3election's Election, raftkv's Store
    and gRPC health;
    with ``metrics``, every call is counted and timed there. Unary calls run
    in a pool of ``max_workers`` threads; streams on the server's event loop."""
    limit = max_request_bytes + GRPC_OVERHEAD_BYTES
    blocking = Blocking(max_workers=64, name="raftkv-stream")
    # a waiting Lock, Campaign or Observe holds a thread of this pool, never one of gRPC's
    recipes = Blocking(max_workers=4096, name="raftkv-recipe")
    # writes the member cannot start without blocking (a quota alarm, a read-only txn)
    writes = Blocking(max_workers=max_workers, name="raftkv-write")

    def configure(server: grpc.aio.Server) -> None:
        rpc_pb2_grpc.add_KVServicer_to_server(
            KVService(ctx, writes, Completions(asyncio.get_running_loop())), server)
        rpc_pb2_grpc.add_LeaseServicer_to_server(LeaseService(ctx, blocking), server)
        rpc_pb2_grpc.add_WatchServicer_to_server(WatchService(ctx, blocking, max_request_bytes), server)
        rpc_pb2_grpc.add_MaintenanceServicer_to_server(MaintenanceService(ctx, blocking), server)
        rpc_pb2_grpc.add_ClusterServicer_to_server(ClusterService(ctx), server)
        rpc_pb2_grpc.add_AuthServicer_to_server(AuthService(ctx), server)
        v3lock_pb2_grpc.add_LockServicer_to_server(LockService(ctx, recipes), server)
        v3election_pb2_grpc.add_ElectionServicer_to_server(ElectionService(ctx, recipes), server)
        store_pb2_grpc.add_StoreServicer_to_server(StoreService(ctx), server)
        health_servicer = health.aio.HealthServicer()
        asyncio.get_running_loop().create_task(health_servicer.set("", health_pb2.HealthCheckResponse.SERVING))
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)

    server = GrpcServer(
        configure, max_workers=max_workers,
        # parsing first, so an undecodable request is refused as etcd refuses
        # it and (as in etcd) counts as no call
        interceptors=[EtcdDecodeErrors(limit), *([metrics.interceptor()] if metrics is not None else [])],
        options=[
            # gRPC refuses what is larger still, in its own words (and without reading it whole)
            ("grpc.max_receive_message_length", max(4 * limit, 64 * 1024 * 1024)),
            ("grpc.max_send_message_length", 2**31 - 1),
            ("grpc.so_reuseport", 0),
        ],
    )
    for address in listen:
        server.add_port(address, credentials)
    return server
