"""Auth through the Python API: in memory and durable, users that survive a
restart, tokens, and the checks a connection makes for a user."""

from __future__ import annotations

import pytest

import raftkv
from raftkv.client.acting import ActingAs
from raftkv.client.passwords import hash_password
from raftkv.mvcc import PutRequest, RangeRequest
from raftkv.mvcc import auth as a
from raftkv.mvcc.permissions import Authorized

pytestmark = pytest.mark.timeout(120)


def set_up(kv) -> None:
    kv.execute(a.UserAddRequest("root", hash_password("rootpw", 4)))
    kv.execute(a.UserGrantRoleRequest("root", "root"))
    kv.execute(a.UserAddRequest("u", hash_password("pw", 4)))
    kv.execute(a.RoleAddRequest("r"))
    kv.execute(a.RoleGrantPermissionRequest("r", a.Permission(b"app/", b"app0", a.PermissionType.READWRITE)))
    kv.execute(a.UserGrantRoleRequest("u", "r"))
    kv.execute(a.AuthEnableRequest())


@pytest.mark.parametrize("durable", [False, True])
def test_tokens_and_checks(tmp_path, durable):
    with (raftkv.open(str(tmp_path / "s")) if durable else raftkv.open()) as kv:
        with pytest.raises(a.AuthNotEnabled):
            kv.authenticate("root", "rootpw")
        set_up(kv)
        with pytest.raises(a.AuthFailed):
            kv.authenticate("u", "wrong")
        token = kv.authenticate("u", "pw")
        assert kv.user_for_token(token) == "u" and kv.user_for_token("nope") is None
        as_u = ActingAs(kv, "u")
        as_u.put("app/x", "1")
        with pytest.raises(a.PermissionDenied):
            as_u.put("other", "1")
        with pytest.raises(a.PermissionDenied):
            as_u.watch("other")
        with pytest.raises(a.UserEmpty):
            ActingAs(kv, None).get("app/x")
        with pytest.raises(a.PermissionDenied):
            as_u.execute(a.UserListRequest())
        kv.execute(a.UserChangePasswordRequest("u", hash_password("pw2", 4)))
        assert kv.user_for_token(token) is None  # a new password ends the old tokens
        kv.authorize("root", PutRequest(b"anything"))


def test_users_and_roles_survive_a_restart(tmp_path):
    path = str(tmp_path / "s")
    with raftkv.open(path) as kv:
        set_up(kv)
    with raftkv.open(path) as kv:
        token = kv.authenticate("u", "pw")
        assert kv.user_for_token(token) == "u"
        kv.authorize("u", RangeRequest(b"app/a"))
        with pytest.raises(a.PermissionDenied):
            kv.authorize("u", RangeRequest(b"zzz"))


@pytest.mark.parametrize("durable", [False, True])
def test_a_write_checked_before_its_permission_was_revoked_is_refused_at_apply(tmp_path, durable):
    """etcd checks a write again as it applies it: one checked while the user
    could write, applied after the permission went, changes nothing."""
    with (raftkv.open(str(tmp_path / "s")) if durable else raftkv.open()) as kv:
        set_up(kv)
        write = PutRequest(b"app/late", b"1")
        checked_at = kv.authorize("u", write)
        kv.execute(a.RoleRevokePermissionRequest("r", b"app/", b"app0"))
        with pytest.raises(a.AuthOldRevision):
            kv.execute(Authorized(write, checked_at))
        assert kv.get("app/late") is None
        with pytest.raises(a.PermissionDenied):  # checked again, as a client that retries is
            ActingAs(kv, "u").put("app/late", "1")
        kv.execute(a.RoleGrantPermissionRequest("r", a.Permission(b"app/", b"app0", a.PermissionType.WRITE)))
        ActingAs(kv, "u").put("app/late", "2")
        assert kv.get("app/late").value == b"2"
        # auth management is not refused for an older revision (etcd checks it by user)
        admin_checked_at = kv.authorize("root", a.RoleAddRequest("r2"))
        kv.execute(a.RoleAddRequest("r3"))
        kv.execute(Authorized(a.RoleAddRequest("r2"), admin_checked_at))
        assert {"r2", "r3"} <= set(kv.execute(a.RoleListRequest()).roles)


def test_a_user_deleted_after_its_token_was_read_gets_the_tokens_error():
    """A member reads a call's token, then checks its user's permissions: a
    deletion of the user in between ends the token, and that is the error."""
    with raftkv.open() as kv:
        set_up(kv)
        token = kv.authenticate("u", "pw")
        by_token, by_certificate = ActingAs(kv, "u", token), ActingAs(kv, "u")
        kv.execute(a.UserDeleteRequest("u"))
        with pytest.raises(a.InvalidAuthToken):
            by_token.get("app/x")
        with pytest.raises(a.InvalidAuthToken):
            by_token.watch("app/x")
        with pytest.raises(a.PermissionDenied):
            by_certificate.get("app/x")
