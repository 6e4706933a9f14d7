"""The auth store: etcd 3.4's rules for users, roles and permissions."""

from __future__ import annotations

import pytest

from raftkv.mvcc import DeleteRangeRequest, PutRequest, RangeRequest, TxnRequest
from raftkv.mvcc.auth import (
    AuthDisableRequest,
    AuthEnableRequest,
    AuthenticateRequest,
    AuthFailed,
    AuthNotEnabled,
    AuthStore,
    InvalidAuthManagement,
    Permission,
    PermissionDenied,
    PermissionNotGranted,
    PermissionType,
    RoleAddRequest,
    RoleAlreadyExist,
    RoleDeleteRequest,
    RoleEmpty,
    RoleGetRequest,
    RoleGrantPermissionRequest,
    RoleListRequest,
    RoleNotFound,
    RoleNotGranted,
    RoleRevokePermissionRequest,
    RootRoleNotExist,
    RootUserNotExist,
    UserAddRequest,
    UserAlreadyExist,
    UserChangePasswordRequest,
    UserDeleteRequest,
    UserEmpty,
    UserGetRequest,
    UserGrantRoleRequest,
    UserListRequest,
    UserNotFound,
    UserRevokeRoleRequest,
)
from raftkv.mvcc.lease import Lessor
from raftkv.mvcc.permissions import authorize
from raftkv.mvcc.requests import Compare, CompareResult, CompareTarget, LeaseRevokeRequest

R, W, RW = PermissionType.READ, PermissionType.WRITE, PermissionType.READWRITE


def enabled_store() -> AuthStore:
    auth = AuthStore()
    auth.apply(UserAddRequest("root", b"hash"))
    auth.apply(RoleAddRequest("root"))
    auth.apply(UserGrantRoleRequest("root", "root"))
    auth.apply(AuthEnableRequest())
    return auth


def test_enabling_needs_a_root_user_with_the_root_role():
    auth = AuthStore()
    with pytest.raises(RootUserNotExist):
        auth.apply(AuthEnableRequest())
    auth.apply(UserAddRequest("root", b"hash"))
    with pytest.raises(RootRoleNotExist):
        auth.apply(AuthEnableRequest())
    auth.apply(UserGrantRoleRequest("root", "root"))  # the root role need not exist to be granted
    revision = auth.revision
    auth.apply(AuthEnableRequest())
    assert auth.enabled and auth.revision == revision + 1
    auth.apply(AuthEnableRequest())  # again: nothing changes
    assert auth.revision == revision + 1


def test_users_as_etcd_manages_them():
    auth = AuthStore()
    with pytest.raises(UserEmpty):
        auth.apply(UserAddRequest(""))
    auth.apply(UserAddRequest("u", b"h1"))
    with pytest.raises(UserAlreadyExist):
        auth.apply(UserAddRequest("u"))
    with pytest.raises(UserNotFound):
        auth.apply(UserGetRequest("nobody"))
    with pytest.raises(RoleNotFound):
        auth.apply(UserGrantRoleRequest("u", "nope"))
    auth.apply(RoleAddRequest("b"))
    auth.apply(RoleAddRequest("a"))
    auth.apply(UserGrantRoleRequest("u", "b"))
    auth.apply(UserGrantRoleRequest("u", "a"))
    auth.apply(UserGrantRoleRequest("u", "a"))
    assert auth.apply(UserGetRequest("u")).roles == ["a", "b"]
    with pytest.raises(RoleNotGranted):
        auth.apply(UserRevokeRoleRequest("u", "c"))
    auth.apply(UserRevokeRoleRequest("u", "a"))
    assert auth.apply(UserChangePasswordRequest("u", b"h2")).invalidated_users == ["u"]
    assert auth.users["u"].password_hash == b"h2"
    auth.apply(UserAddRequest("t"))
    assert auth.apply(UserListRequest()).users == ["t", "u"]
    assert auth.apply(UserDeleteRequest("u")).invalidated_users == ["u"]
    with pytest.raises(UserNotFound):
        auth.apply(UserDeleteRequest("u"))


def test_roles_and_permissions():
    auth = AuthStore()
    with pytest.raises(RoleEmpty):
        auth.apply(RoleAddRequest(""))
    auth.apply(RoleAddRequest("r"))
    with pytest.raises(RoleAlreadyExist):
        auth.apply(RoleAddRequest("r"))
    auth.apply(RoleGrantPermissionRequest("r", Permission(b"b", b"c", W)))
    auth.apply(RoleGrantPermissionRequest("r", Permission(b"a", b"", R)))
    auth.apply(RoleGrantPermissionRequest("r", Permission(b"a", b"", RW)))  # replaces the type
    assert auth.apply(RoleGetRequest("r")).permissions == [Permission(b"a", b"", RW), Permission(b"b", b"c", W)]
    with pytest.raises(PermissionNotGranted):
        auth.apply(RoleRevokePermissionRequest("r", b"b"))
    auth.apply(RoleRevokePermissionRequest("r", b"b", b"c"))
    auth.apply(UserAddRequest("u"))
    auth.apply(UserGrantRoleRequest("u", "r"))
    auth.apply(RoleAddRequest("s"))
    assert auth.apply(RoleListRequest()).roles == ["r", "s"]
    auth.apply(RoleDeleteRequest("r"))
    assert auth.users["u"].roles == []  # a deleted role leaves its users
    with pytest.raises(RoleNotFound):
        auth.apply(RoleGetRequest("r"))


def test_root_cannot_lose_root_while_auth_is_on():
    auth = enabled_store()
    for request in (UserDeleteRequest("root"), UserRevokeRoleRequest("root", "root"), RoleDeleteRequest("root")):
        with pytest.raises(InvalidAuthManagement):
            auth.apply(request)
    auth.apply(AuthDisableRequest())
    auth.apply(UserRevokeRoleRequest("root", "root"))


def test_authenticate_needs_auth_on_and_a_known_user():
    auth = AuthStore()
    with pytest.raises(AuthNotEnabled):
        auth.apply(AuthenticateRequest("root", "tok"))
    auth = enabled_store()
    with pytest.raises(AuthFailed):
        auth.apply(AuthenticateRequest("nobody", "tok"))
    assert auth.apply(AuthenticateRequest("root", "tok")).token == "tok"


def user_with(*permissions: Permission) -> AuthStore:
    auth = enabled_store()
    auth.apply(RoleAddRequest("r"))
    auth.apply(RoleAddRequest("r2"))
    for i, permission in enumerate(permissions):
        auth.apply(RoleGrantPermissionRequest("r" if i % 2 == 0 else "r2", permission))
    auth.apply(UserAddRequest("u"))
    auth.apply(UserGrantRoleRequest("u", "r"))
    auth.apply(UserGrantRoleRequest("u", "r2"))
    return auth


@pytest.mark.parametrize(("key", "range_end", "wanted", "allowed"), [
    (b"a", b"", R, True), (b"a", b"", W, False), (b"a", b"a\x00", R, True), (b"a", b"b", R, False),
    (b"p/", b"p0", R, True), (b"p/x", b"", W, True), (b"p/", b"\x00", R, False),
    (b"b", b"d", W, True),    # covered by [b, c) of one role and [c, f) of the other
    (b"b", b"g", W, False),   # [f, g) is not granted
    (b"c", b"", R, False), (b"z", b"\x00", R, True), (b"zz", b"", W, False),
    (b"b", b"b", W, False),   # an empty range: nothing covers it
])
def test_a_range_is_allowed_when_the_roles_together_cover_it(key, range_end, wanted, allowed):
    auth = user_with(Permission(b"a", b"", R), Permission(b"p/", b"p0", RW), Permission(b"b", b"c", W),
                     Permission(b"c", b"f", W), Permission(b"z", b"\x00", R))
    if allowed:
        auth.check("u", key, range_end, wanted)
    else:
        with pytest.raises(PermissionDenied):
            auth.check("u", key, range_end, wanted)


def test_requests_need_what_etcd_checks():
    auth = user_with(Permission(b"r", b"", R), Permission(b"w", b"", W))
    lessor = Lessor()
    authorize(auth, lessor, "u", RangeRequest(b"r"))
    authorize(auth, lessor, "u", PutRequest(b"w", b"v"))
    for request in (PutRequest(b"w", b"v", prev_kv=True), DeleteRangeRequest(b"w", prev_kv=True),
                    TxnRequest([Compare(b"w", CompareTarget.VALUE, CompareResult.EQUAL, b"")], [], []),
                    TxnRequest([], [PutRequest(b"w")], [TxnRequest([], [RangeRequest(b"w")], [])]),
                    UserListRequest()):
        with pytest.raises(PermissionDenied):
            authorize(auth, lessor, "u", request)
    lessor.grant(7, 60).keys.update({b"w", b"r"})
    with pytest.raises(PermissionDenied):
        authorize(auth, lessor, "u", LeaseRevokeRequest(7))  # it would delete r, which u may not write
    with pytest.raises(UserEmpty):
        authorize(auth, lessor, None, RangeRequest(b"r"))
    authorize(auth, lessor, "root", LeaseRevokeRequest(7))
    authorize(AuthStore(), lessor, None, UserListRequest())  # auth off: anyone


def test_snapshot_round_trip():
    auth = user_with(Permission(b"a", b"b", RW))
    copy = AuthStore()
    copy.restore(auth.snapshot())
    assert copy.snapshot() == auth.snapshot()
    assert copy.enabled and copy.apply(UserGetRequest("u")).roles == ["r", "r2"]
