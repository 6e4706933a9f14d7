"""``raftkv auth|user|role``: etcd's auth, printed as etcdctl prints it."""

from __future__ import annotations

import sys

import click

from raftkv._proto.authpb import auth_pb2
from raftkv._proto.etcdserverpb import rpc_pb2
from raftkv.cli import output, rpc
from raftkv.cli.context import client, group, write_out
from raftkv.mvcc.auth import RootRoleNotExist
from raftkv.mvcc.index import prefix_end


def register(cli: click.Group) -> None:
    cli.add_command(auth)
    cli.add_command(user)
    cli.add_command(role)


def _call(method: str, message):
    return rpc.call(client(), "Auth", method, message)


def _done(response, text: str) -> None:
    if write_out((output.SIMPLE, output.JSON)) == output.JSON:
        output.echo_json(output.pb_to_json(response))
    else:
        click.echo(text)


# ---- auth ---------------------------------------------------------------------------

@group("auth")
def auth() -> None:
    """Turn authentication on or off.

    \b
    Example:
        raftkv user add root:secret && raftkv auth enable
    """


@auth.command("enable")
def enable() -> None:
    """Turn authentication on (needs the root user; gives it the root role, as etcdctl does).

    \b
    Example:
        raftkv auth enable
    """
    while True:
        try:
            response = _call("AuthEnable", rpc_pb2.AuthEnableRequest())
            break
        except RootRoleNotExist:
            _call("RoleAdd", rpc_pb2.AuthRoleAddRequest(name="root"))
            _call("UserGrantRole", rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
    _done(response, "Authentication Enabled")


@auth.command("disable")
def disable() -> None:
    """Turn authentication off (the root user only).

    \b
    Example:
        raftkv --user root:secret auth disable
    """
    _done(_call("AuthDisable", rpc_pb2.AuthDisableRequest()), "Authentication Disabled")


# ---- users ----------------------------------------------------------------------------

@group("user")
def user() -> None:
    """Users: add, get, list, delete, passwd, grant-role, revoke-role.

    \b
    Example:
        raftkv --user root:secret user add alice:pw
    """


def _new_password(name: str, interactive: bool) -> str:
    if not interactive:
        return sys.stdin.readline().rstrip("\n")
    password = click.prompt(f"Password of {name}", hide_input=True, err=True)
    again = click.prompt(f"Type password of {name} again for confirmation", hide_input=True, err=True)
    if password != again:
        raise click.ClickException("given passwords are different")
    return password


@user.command("add")
@click.argument("name_password", metavar="NAME[:PASSWORD]")
@click.option("--interactive/--no-interactive", "interactive", default=True,
              help="Ask for the password (otherwise read it from stdin).")
@click.option("--no-password", is_flag=True, help="A user without a password (client certificates only).")
def user_add(name_password: str, interactive: bool, no_password: bool) -> None:
    """Add a user.

    \b
    Example:
        raftkv user add alice:pw
    """
    name, sep, password = name_password.partition(":")
    if not name:
        raise click.ClickException("empty user name is not allowed")
    if not sep and not no_password:
        password = _new_password(name, interactive)
    response = _call("UserAdd", rpc_pb2.AuthUserAddRequest(
        name=name, password=password, options=auth_pb2.UserAddOptions(no_password=no_password)))
    _done(response, f"User {name} created")


@user.command("get")
@click.argument("name")
def user_get(name: str) -> None:
    """A user's roles.

    \b
    Example:
        raftkv user get alice
    """
    response = _call("UserGet", rpc_pb2.AuthUserGetRequest(name=name))
    _done(response, f"User: {name}\nRoles: {' '.join(response.roles)}")


@user.command("list")
def user_list() -> None:
    """Every user.

    \b
    Example:
        raftkv user list
    """
    response = _call("UserList", rpc_pb2.AuthUserListRequest())
    _done(response, "\n".join(response.users))


@user.command("delete")
@click.argument("name")
def user_delete(name: str) -> None:
    """Delete a user.

    \b
    Example:
        raftkv user delete alice
    """
    _done(_call("UserDelete", rpc_pb2.AuthUserDeleteRequest(name=name)), f"User {name} deleted")


@user.command("passwd")
@click.argument("name")
@click.option("--interactive/--no-interactive", "interactive", default=True,
              help="Ask for the password (otherwise read it from stdin).")
def user_passwd(name: str, interactive: bool) -> None:
    """Change a user's password.

    \b
    Example:
        echo newpw | raftkv user passwd alice --no-interactive
    """
    password = _new_password(name, interactive)
    response = _call("UserChangePassword", rpc_pb2.AuthUserChangePasswordRequest(name=name, password=password))
    _done(response, "Password updated")


@user.command("grant-role")
@click.argument("name")
@click.argument("role_name", metavar="ROLE")
def user_grant_role(name: str, role_name: str) -> None:
    """Give a user a role.

    \b
    Example:
        raftkv user grant-role alice readers
    """
    response = _call("UserGrantRole", rpc_pb2.AuthUserGrantRoleRequest(user=name, role=role_name))
    _done(response, f"Role {role_name} is granted to user {name}")


@user.command("revoke-role")
@click.argument("name")
@click.argument("role_name", metavar="ROLE")
def user_revoke_role(name: str, role_name: str) -> None:
    """Take a role from a user.

    \b
    Example:
        raftkv user revoke-role alice readers
    """
    response = _call("UserRevokeRole", rpc_pb2.AuthUserRevokeRoleRequest(name=name, role=role_name))
    _done(response, f"Role {role_name} is revoked from user {name}")


# ---- roles ----------------------------------------------------------------------------

@group("role")
def role() -> None:
    """Roles: add, get, list, delete, grant-permission, revoke-permission.

    \b
    Example:
        raftkv role grant-permission readers read --prefix /app/
    """


@role.command("add")
@click.argument("name")
def role_add(name: str) -> None:
    """Add a role.

    \b
    Example:
        raftkv role add readers
    """
    _done(_call("RoleAdd", rpc_pb2.AuthRoleAddRequest(name=name)), f"Role {name} created")


def _permission_text(perm) -> str:
    key, end = perm.key.decode(errors="replace"), perm.range_end.decode(errors="replace")
    if not perm.range_end:
        return f"\t{key}"
    text = f"\t[{key}, {end})" if perm.range_end != b"\x00" else f"\t[{key}, <open ended>"
    if perm.key and prefix_end(perm.key) == perm.range_end:
        text += f" (prefix {key})"
    return text


@role.command("get")
@click.argument("name")
def role_get(name: str) -> None:
    """A role's permissions.

    \b
    Example:
        raftkv role get readers
    """
    response = _call("RoleGet", rpc_pb2.AuthRoleGetRequest(role=name))
    read = [_permission_text(p) for p in response.perm if p.permType in (auth_pb2.Permission.READ,
                                                                        auth_pb2.Permission.READWRITE)]
    write = [_permission_text(p) for p in response.perm if p.permType in (auth_pb2.Permission.WRITE,
                                                                         auth_pb2.Permission.READWRITE)]
    _done(response, "\n".join([f"Role {name}", "KV Read:", *read, "KV Write:", *write]))


@role.command("list")
def role_list() -> None:
    """Every role.

    \b
    Example:
        raftkv role list
    """
    response = _call("RoleList", rpc_pb2.AuthRoleListRequest())
    _done(response, "\n".join(response.roles))


@role.command("delete")
@click.argument("name")
def role_delete(name: str) -> None:
    """Delete a role (its users lose it).

    \b
    Example:
        raftkv role delete readers
    """
    _done(_call("RoleDelete", rpc_pb2.AuthRoleDeleteRequest(role=name)), f"Role {name} deleted")


def _span(key: str, range_end: str | None, prefix: bool, from_key: bool) -> tuple[bytes, bytes]:
    if prefix and from_key:
        raise click.UsageError("--from-key and --prefix are mutually exclusive")
    if prefix:
        return key.encode(), prefix_end(key.encode())
    if from_key:
        return key.encode(), b"\x00"
    return key.encode(), (range_end or "").encode()


_TYPES = {"read": auth_pb2.Permission.READ, "write": auth_pb2.Permission.WRITE,
          "readwrite": auth_pb2.Permission.READWRITE}


@role.command("grant-permission")
@click.argument("name")
@click.argument("permission_type", metavar="read|write|readwrite", type=click.Choice(list(_TYPES)))
@click.argument("key")
@click.argument("range_end", required=False)
@click.option("--prefix", is_flag=True, help="Every key with this prefix.")
@click.option("--from-key", is_flag=True, help="Every key from this one on.")
def role_grant(name: str, permission_type: str, key: str, range_end: str | None, prefix: bool,
               from_key: bool) -> None:
    """Let a role read or write a key, a range [KEY, RANGE_END), or a prefix.

    \b
    Example:
        raftkv role grant-permission readers read --prefix /app/
    """
    begin, end = _span(key, range_end, prefix, from_key)
    perm = auth_pb2.Permission(permType=_TYPES[permission_type], key=begin, range_end=end)
    response = _call("RoleGrantPermission", rpc_pb2.AuthRoleGrantPermissionRequest(name=name, perm=perm))
    _done(response, f"Role {name} updated")


@role.command("revoke-permission")
@click.argument("name")
@click.argument("key")
@click.argument("range_end", required=False)
@click.option("--prefix", is_flag=True, help="Every key with this prefix.")
@click.option("--from-key", is_flag=True, help="Every key from this one on.")
def role_revoke(name: str, key: str, range_end: str | None, prefix: bool, from_key: bool) -> None:
    """Take a permission from a role.

    \b
    Example:
        raftkv role revoke-permission readers --prefix /app/
    """
    begin, end = _span(key, range_end, prefix, from_key)
    response = _call("RoleRevokePermission",
                     rpc_pb2.AuthRoleRevokePermissionRequest(role=name, key=begin, range_end=end))
    if end:
        text = f"Permission of range [{begin.decode()}, {end.decode()}) is revoked from role {name}"
    else:
        text = f"Permission of key {key} is revoked from role {name}"
    _done(response, text)
