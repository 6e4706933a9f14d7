"""Users, roles and key permissions: etcd's auth store as replicated state.

The requests here go through the log like writes, so every member holds the
same users and roles and decides permissions the same way. Passwords arrive
already hashed (bcrypt, by the member that took the request): applying a
request never depends on randomness or time. Who holds which token is not
replicated state (see ``raftkv.raft.tokens``): an Authenticate request only
carries the token the proposing member chose, and every member records it.

Permissions follow etcd 3.4: a role grants READ, WRITE or READWRITE on a
key, a range [key, range_end), or every key from key on (range_end "\\0");
a request over a range is allowed when the user's roles together cover all
of it; the root role allows everything.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from raftkv.errors import InvalidArgument, RaftKVError
from raftkv.mvcc.index import ALL_KEYS_FROM

ROOT = "root"


# ---- errors: etcd's messages and codes --------------------------------------------------

class AuthFailedPrecondition(RaftKVError):
    grpc_code = "FAILED_PRECONDITION"


class RootUserNotExist(AuthFailedPrecondition):
    message = "etcdserver: root user does not exist"


class RootRoleNotExist(AuthFailedPrecondition):
    message = "etcdserver: root user does not have root role"


class UserAlreadyExist(AuthFailedPrecondition):
    message = "etcdserver: user name already exists"


class UserNotFound(AuthFailedPrecondition):
    message = "etcdserver: user name not found"


class RoleAlreadyExist(AuthFailedPrecondition):
    message = "etcdserver: role name already exists"


class RoleNotFound(AuthFailedPrecondition):
    message = "etcdserver: role name not found"


class RoleNotGranted(AuthFailedPrecondition):
    message = "etcdserver: role is not granted to the user"


class PermissionNotGranted(AuthFailedPrecondition):
    message = "etcdserver: permission is not granted to the role"


class AuthNotEnabled(AuthFailedPrecondition):
    message = "etcdserver: authentication is not enabled"


class UserEmpty(InvalidArgument):
    message = "etcdserver: user name is empty"


class RoleEmpty(InvalidArgument):
    message = "etcdserver: role name is empty"


class AuthFailed(InvalidArgument):
    message = "etcdserver: authentication failed, invalid user ID or password"


class InvalidAuthManagement(InvalidArgument):
    message = "etcdserver: invalid auth management"


class PermissionDenied(RaftKVError):
    message = "etcdserver: permission denied"
    grpc_code = "PERMISSION_DENIED"


class InvalidAuthToken(RaftKVError):
    message = "etcdserver: invalid auth token"
    grpc_code = "UNAUTHENTICATED"


class AuthOldRevision(RaftKVError):
    """A JWT token issued, or a request checked, before the users and roles
    last changed (etcd's auth revision check); a client authenticates again
    and retries."""

    message = "etcdserver: revision of auth store is old"
    grpc_code = "INVALID_ARGUMENT"


class AdminPermissionDenied(RaftKVError):
    """What etcd 3.4's maintenance calls (defragment, hash, snapshot, move
    leader) answer a user without the root role: an auth error that never
    became a gRPC status, so gRPC calls it Unknown."""

    message = "auth: permission denied"
    grpc_code = "UNKNOWN"


AUTH_ERRORS = (RootUserNotExist, RootRoleNotExist, UserAlreadyExist, UserNotFound, RoleAlreadyExist, RoleNotFound,
               RoleNotGranted, PermissionNotGranted, AuthNotEnabled, UserEmpty, RoleEmpty, AuthFailed,
               InvalidAuthManagement, PermissionDenied, InvalidAuthToken, AuthOldRevision, AdminPermissionDenied)


# ---- the state ---------------------------------------------------------------------------

class PermissionType(enum.IntEnum):
    READ = 0
    WRITE = 1
    READWRITE = 2


@dataclass(frozen=True, order=True)
class Permission:
    key: bytes
    range_end: bytes = b""
    type: PermissionType = PermissionType.READ

    def allows(self, wanted: PermissionType) -> bool:
        return self.type == PermissionType.READWRITE or self.type == wanted

    def interval(self) -> tuple[bytes, bytes | None]:
        """[begin, end) with None for "no end"; a single key is [key, key + "\\0")."""
        if not self.range_end:
            return self.key, self.key + b"\x00"
        return self.key, None if self.range_end == ALL_KEYS_FROM else self.range_end


@dataclass
class User:
    name: str
    password_hash: bytes = b""
    roles: list[str] = field(default_factory=list)  # sorted
    no_password: bool = False


# ---- requests (all of them go through the log) --------------------------------------------

@dataclass
class AuthEnableRequest:
    pass


@dataclass
class AuthDisableRequest:
    pass


@dataclass
class AuthenticateRequest:
    name: str
    token: str  # chosen by the member that checked the password


@dataclass
class UserAddRequest:
    name: str
    password_hash: bytes = b""
    no_password: bool = False


@dataclass
class UserGetRequest:
    name: str


@dataclass
class UserListRequest:
    pass


@dataclass
class UserDeleteRequest:
    name: str


@dataclass
class UserChangePasswordRequest:
    name: str
    password_hash: bytes


@dataclass
class UserGrantRoleRequest:
    user: str
    role: str


@dataclass
class UserRevokeRoleRequest:
    name: str
    role: str


@dataclass
class RoleAddRequest:
    name: str


@dataclass
class RoleGetRequest:
    role: str


@dataclass
class RoleListRequest:
    pass


@dataclass
class RoleDeleteRequest:
    role: str


@dataclass
class RoleGrantPermissionRequest:
    name: str
    permission: Permission


@dataclass
class RoleRevokePermissionRequest:
    role: str
    key: bytes
    range_end: bytes = b""


AUTH_REQUESTS = (
    AuthEnableRequest, AuthDisableRequest, AuthenticateRequest, UserAddRequest, UserGetRequest,
    UserListRequest, UserDeleteRequest, UserChangePasswordRequest, UserGrantRoleRequest,
    UserRevokeRoleRequest, RoleAddRequest, RoleGetRequest, RoleListRequest, RoleDeleteRequest,
    RoleGrantPermissionRequest, RoleRevokePermissionRequest,
)
# what a user needs the root role for once auth is on (etcd's admin checks)
ADMIN_REQUESTS = tuple(r for r in AUTH_REQUESTS if r not in (AuthEnableRequest, AuthenticateRequest))


@dataclass
class AuthResponse:
    """The answer to any auth request: what etcd's response of that kind holds."""

    revision: int = 0           # the KV revision, for the header (filled by the store)
    token: str = ""             # Authenticate
    roles: list[str] = field(default_factory=list)         # UserGet, RoleList
    users: list[str] = field(default_factory=list)         # UserList
    permissions: list[Permission] = field(default_factory=list)  # RoleGet
    invalidated_users: list[str] = field(default_factory=list)   # whose tokens must go


class AuthStore:
    def __init__(self) -> None:
        self.enabled = False
        self.revision = 1  # moves with every change, as etcd's auth revision
        self.users: dict[str, User] = {}
        self.roles: dict[str, list[Permission]] = {}

    def password_hash_for(self, name: str) -> bytes:
        """What a password given for ``name`` must match; etcd's errors when
        auth is off or the user is unknown."""
        if not self.enabled:
            raise AuthNotEnabled()
        user = self.users.get(name)
        if user is None:
            raise AuthFailed()
        return user.password_hash

    # ---- permissions -------------------------------------------------------------

    def is_root(self, name: str) -> bool:
        user = self.users.get(name)
        return user is not None and ROOT in user.roles

    def check(self, user: str | None, key: bytes, range_end: bytes, wanted: PermissionType) -> None:
        """etcd's isOpPermitted: nothing to check while auth is off."""
        if not self.enabled:
            return
        if not user:
            raise UserEmpty()
        if user not in self.users:
            raise PermissionDenied()
        if self.is_root(user) or self._covered(user, key, range_end, wanted):
            return
        raise PermissionDenied()

    def check_admin(self, user: str | None, error: type[RaftKVError] = PermissionDenied) -> None:
        """etcd's IsAdminPermitted: the root role, once auth is on."""
        if not self.enabled:
            return
        if not user:
            raise UserEmpty()
        if user not in self.users:
            raise UserNotFound()
        if not self.is_root(user):
            raise error()

    def _covered(self, user: str, key: bytes, range_end: bytes, wanted: PermissionType) -> bool:
        granted = sorted((p.interval() for role in self.users[user].roles for p in self.roles.get(role, ())
                          if p.allows(wanted)), key=lambda interval: interval[0])
        if not range_end:
            return any(begin <= key and (end is None or key < end) for begin, end in granted)
        end = None if range_end == ALL_KEYS_FROM else range_end
        if end is not None and end <= key:
            return False  # an empty range: etcd finds nothing that covers it
        reached: bytes | None = key
        for begin, until in granted:
            if until is not None and until <= reached:
                continue  # ends before what is still uncovered
            if begin > reached:
                return False  # a gap
            if until is None:
                return True
            reached = until
            if end is not None and reached >= end:
                return True
        return False

    # ---- applying requests -------------------------------------------------------------

    def apply(self, request: object) -> AuthResponse:
        handler = _HANDLERS[type(request)]
        return handler(self, request)

    def _changed(self) -> None:
        self.revision += 1

    def _enable(self, request: AuthEnableRequest) -> AuthResponse:
        if self.enabled:
            return AuthResponse()
        root = self.users.get(ROOT)
        if root is None:
            raise RootUserNotExist()
        if ROOT not in root.roles:
            raise RootRoleNotExist()
        self.enabled = True
        self._changed()
        return AuthResponse(invalidated_users=list(self.users))

    def _disable(self, request: AuthDisableRequest) -> AuthResponse:
        if self.enabled:
            self.enabled = False
            self._changed()
        return AuthResponse(invalidated_users=list(self.users))

    def _authenticate(self, request: AuthenticateRequest) -> AuthResponse:
        if not self.enabled:
            raise AuthNotEnabled()
        if request.name not in self.users:
            raise AuthFailed()
        return AuthResponse(token=request.token)

    def _user(self, name: str) -> User:
        user = self.users.get(name)
        if user is None:
            raise UserNotFound()
        return user

    def _role(self, name: str) -> list[Permission]:
        permissions = self.roles.get(name)
        if permissions is None:
            raise RoleNotFound()
        return permissions

    def _user_add(self, request: UserAddRequest) -> AuthResponse:
        if not request.name:
            raise UserEmpty()
        if request.name in self.users:
            raise UserAlreadyExist()
        self.users[request.name] = User(request.name, request.password_hash, [], request.no_password)
        self._changed()
        return AuthResponse()

    def _user_get(self, request: UserGetRequest) -> AuthResponse:
        return AuthResponse(roles=list(self._user(request.name).roles))

    def _user_list(self, request: UserListRequest) -> AuthResponse:
        return AuthResponse(users=sorted(self.users))

    def _user_delete(self, request: UserDeleteRequest) -> AuthResponse:
        if self.enabled and request.name == ROOT:
            raise InvalidAuthManagement()
        self._user(request.name)
        del self.users[request.name]
        self._changed()
        return AuthResponse(invalidated_users=[request.name])

    def _user_change_password(self, request: UserChangePasswordRequest) -> AuthResponse:
        user = self._user(request.name)
        user.password_hash = request.password_hash
        self._changed()
        return AuthResponse(invalidated_users=[request.name])

    def _user_grant_role(self, request: UserGrantRoleRequest) -> AuthResponse:
        user = self._user(request.user)
        if request.role != ROOT:
            self._role(request.role)
        if request.role not in user.roles:
            user.roles = sorted([*user.roles, request.role])
            self._changed()
        return AuthResponse()

    def _user_revoke_role(self, request: UserRevokeRoleRequest) -> AuthResponse:
        if self.enabled and request.name == ROOT and request.role == ROOT:
            raise InvalidAuthManagement()
        user = self._user(request.name)
        if request.role not in user.roles:
            raise RoleNotGranted()
        user.roles = [r for r in user.roles if r != request.role]
        self._changed()
        return AuthResponse()

    def _role_add(self, request: RoleAddRequest) -> AuthResponse:
        if not request.name:
            raise RoleEmpty()
        if request.name in self.roles:
            raise RoleAlreadyExist()
        self.roles[request.name] = []
        self._changed()
        return AuthResponse()

    def _role_get(self, request: RoleGetRequest) -> AuthResponse:
        return AuthResponse(permissions=list(self._role(request.role)))

    def _role_list(self, request: RoleListRequest) -> AuthResponse:
        return AuthResponse(roles=sorted(self.roles))

    def _role_delete(self, request: RoleDeleteRequest) -> AuthResponse:
        if self.enabled and request.role == ROOT:
            raise InvalidAuthManagement()
        self._role(request.role)
        del self.roles[request.role]
        for user in self.users.values():
            if request.role in user.roles:
                user.roles = [r for r in user.roles if r != request.role]
        self._changed()
        return AuthResponse()

    def _role_grant(self, request: RoleGrantPermissionRequest) -> AuthResponse:
        permissions = self._role(request.name)
        granted = request.permission
        kept = [p for p in permissions if (p.key, p.range_end) != (granted.key, granted.range_end)]
        self.roles[request.name] = sorted([*kept, granted])
        self._changed()
        return AuthResponse()

    def _role_revoke(self, request: RoleRevokePermissionRequest) -> AuthResponse:
        permissions = self._role(request.role)
        kept = [p for p in permissions if (p.key, p.range_end) != (request.key, request.range_end)]
        if len(kept) == len(permissions):
            raise PermissionNotGranted()
        self.roles[request.role] = kept
        self._changed()
        return AuthResponse()

    # ---- snapshots -----------------------------------------------------------------

    def snapshot(self) -> dict:
        return {
            "enabled": self.enabled,
            "revision": self.revision,
            "users": [[u.name, u.password_hash, list(u.roles), u.no_password] for u in self.users.values()],
            "roles": [[name, [[p.key, p.range_end, int(p.type)] for p in perms]]
                      for name, perms in self.roles.items()],
        }

    def restore(self, state: dict | None) -> None:
        self.__init__()
        if not state:
            return
        self.enabled = bool(state["enabled"])
        self.revision = int(state["revision"])
        for name, password_hash, roles, no_password in state["users"]:
            self.users[str(name)] = User(str(name), bytes(password_hash), sorted(map(str, roles)), bool(no_password))
        for name, perms in state["roles"]:
            self.roles[str(name)] = sorted(Permission(bytes(k), bytes(e), PermissionType(t)) for k, e, t in perms)


_HANDLERS = {
    AuthEnableRequest: AuthStore._enable,
    AuthDisableRequest: AuthStore._disable,
    AuthenticateRequest: AuthStore._authenticate,
    UserAddRequest: AuthStore._user_add,
    UserGetRequest: AuthStore._user_get,
    UserListRequest: AuthStore._user_list,
    UserDeleteRequest: AuthStore._user_delete,
    UserChangePasswordRequest: AuthStore._user_change_password,
    UserGrantRoleRequest: AuthStore._user_grant_role,
    UserRevokeRoleRequest: AuthStore._user_revoke_role,
    RoleAddRequest: AuthStore._role_add,
    RoleGetRequest: AuthStore._role_get,
    RoleListRequest: AuthStore._role_list,
    RoleDeleteRequest: AuthStore._role_delete,
    RoleGrantPermissionRequest: AuthStore._role_grant,
    RoleRevokePermissionRequest: AuthStore._role_revoke,
}
