"""etcdserverpb.Auth: enabling auth, authenticating, users and roles.

Every change goes through the log (``mvcc/auth.py`` applies it); passwords
are hashed here, with bcrypt at --bcrypt-cost, before they are proposed.
"""

from __future__ import annotations

from raftkv._proto.authpb import auth_pb2
from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv.client.passwords import hash_password
from raftkv.mvcc import auth
from raftkv.server.context import ServerContext, grpc_errors
from raftkv.wire import _fill_header, request_from_pb


class AuthService(rpc_pb2_grpc.AuthServicer):
    def __init__(self, ctx: ServerContext) -> None:
        self._ctx = ctx

    def _run(self, request: object, context, response):
        result = self._ctx.kv_for(context).execute(request)
        _fill_header(response.header, result.revision, self._ctx.header())
        return response, result

    def _simple(self, request, context, response_type):
        return self._run(request_from_pb(request), context, response_type())[0]

    @grpc_errors
    def AuthEnable(self, request, context):
        result = self._ctx.kv.execute(auth.AuthEnableRequest())  # no user has rights before auth is on
        response = rpc_pb2.AuthEnableResponse()
        _fill_header(response.header, result.revision, self._ctx.header())
        return response

    @grpc_errors
    def AuthDisable(self, request, context):
        return self._simple(request, context, rpc_pb2.AuthDisableResponse)

    @grpc_errors
    def Authenticate(self, request, context):
        token = self._ctx.kv.authenticate(request.name, request.password)
        response = rpc_pb2.AuthenticateResponse(token=token)
        _fill_header(response.header, self._ctx.kv.status().revision, self._ctx.header())
        return response

    def _hashed(self, context, password: str) -> bytes:
        self._ctx.check_admin(context)  # before spending a bcrypt round on someone not allowed
        return hash_password(password, self._ctx.bcrypt_cost)

    @grpc_errors
    def UserAdd(self, request, context):
        if not request.name:
            raise auth.UserEmpty()
        no_password = request.options.no_password
        password_hash = b"" if no_password else self._hashed(context, request.password)
        return self._run(auth.UserAddRequest(request.name, password_hash, no_password), context,
                         rpc_pb2.AuthUserAddResponse())[0]

    @grpc_errors
    def UserChangePassword(self, request, context):
        return self._run(auth.UserChangePasswordRequest(request.name, self._hashed(context, request.password)),
                         context, rpc_pb2.AuthUserChangePasswordResponse())[0]

    @grpc_errors
    def UserGet(self, request, context):
        response, result = self._run(request_from_pb(request), context, rpc_pb2.AuthUserGetResponse())
        response.roles.extend(result.roles)
        return response

    @grpc_errors
    def UserList(self, request, context):
        response, result = self._run(request_from_pb(request), context, rpc_pb2.AuthUserListResponse())
        response.users.extend(result.users)
        return response

    @grpc_errors
    def UserDelete(self, request, context):
        return self._simple(request, context, rpc_pb2.AuthUserDeleteResponse)

    @grpc_errors
    def UserGrantRole(self, request, context):
        return self._simple(request, context, rpc_pb2.AuthUserGrantRoleResponse)

    @grpc_errors
    def UserRevokeRole(self, request, context):
        return self._simple(request, context, rpc_pb2.AuthUserRevokeRoleResponse)

    @grpc_errors
    def RoleAdd(self, request, context):
        return self._simple(request, context, rpc_pb2.AuthRoleAddResponse)

    @grpc_errors
    def RoleGet(self, request, context):
        response, result = self._run(request_from_pb(request), context, rpc_pb2.AuthRoleGetResponse())
        response.perm.extend(auth_pb2.Permission(permType=p.type, key=p.key, range_end=p.range_end)
                             for p in result.permissions)
        return response

    @grpc_errors
    def RoleList(self, request, context):
        response, result = self._run(request_from_pb(request), context, rpc_pb2.AuthRoleListResponse())
        response.roles.extend(result.roles)
        return response

    @grpc_errors
    def RoleDelete(self, request, context):
        return self._simple(request, context, rpc_pb2.AuthRoleDeleteResponse)

    @grpc_errors
    def RoleGrantPermission(self, request, context):
        return self._simple(request, context, rpc_pb2.AuthRoleGrantPermissionResponse)

    @grpc_errors
    def RoleRevokePermission(self, request, context):
        return self._simple(request, context, rpc_pb2.AuthRoleRevokePermissionResponse)
