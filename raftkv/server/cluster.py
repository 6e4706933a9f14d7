"""etcdserverpb.Cluster: list, add and remove members."""

from __future__ import annotations

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv.errors import NotSupported
from raftkv.server.context import ServerContext, grpc_errors
from raftkv.wire import _fill_header


def _member_pb(record) -> rpc_pb2.Member:
    return rpc_pb2.Member(ID=record.id, name=record.name, peerURLs=record.peer_urls,
                          clientURLs=record.client_urls, isLearner=record.is_learner)


class ClusterService(rpc_pb2_grpc.ClusterServicer):
    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx

    def _members(self) -> list[rpc_pb2.Member]:
        return [_member_pb(r) for r in self._ctx.kv.members()]

    def _header(self, out) -> None:
        _fill_header(out, 0, self._ctx.header())  # etcd's Cluster answers carry no revision

    @grpc_errors
    def MemberList(self, request, context):
        response = rpc_pb2.MemberListResponse(members=self._members())
        self._header(response.header)
        return response

    @grpc_errors
    def MemberAdd(self, request, context):
        self._ctx.check_admin(context)
        added = self._ctx.kv.member_add(list(request.peerURLs), is_learner=request.isLearner)
        response = rpc_pb2.MemberAddResponse(member=_member_pb(added), members=self._members())
        self._header(response.header)
        return response

    @grpc_errors
    def MemberRemove(self, request, context):
        self._ctx.check_admin(context)
        self._ctx.kv.member_remove(request.ID)
        response = rpc_pb2.MemberRemoveResponse(members=self._members())
        self._header(response.header)
        return response

    @grpc_errors
    def MemberUpdate(self, request, context):
        self._ctx.check_admin(context)
        raise NotSupported("raftkv: a member's peer URL is its Raft identity and cannot change; "
                           "remove the member and add it again")

    @grpc_errors
    def MemberPromote(self, request, context):
        self._ctx.check_admin(context)
        self._ctx.kv.member_promote(request.ID)
        response = rpc_pb2.MemberPromoteResponse(members=self._members())
        self._header(response.header)
        return response
