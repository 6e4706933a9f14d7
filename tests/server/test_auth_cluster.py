"""Auth across a 3-member cluster: users and roles replicated through the
log, a token issued by one member accepted by the others, a deleted user's
tokens gone everywhere; and tokens that lapse after --auth-token-ttl."""

from __future__ import annotations

import time

import grpc
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from raftkv._proto.authpb import auth_pb2
from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc

pytestmark = pytest.mark.timeout(120)


def stubs(endpoint: str):
    channel = grpc.insecure_channel(endpoint)
    return channel, rpc_pb2_grpc.AuthStub(channel), rpc_pb2_grpc.KVStub(channel)


def eventually(call, seconds: float = 10.0):
    """A call that may meet a member that has not applied the entry yet."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return call()
        except grpc.RpcError as e:
            if e.code() != grpc.StatusCode.UNAUTHENTICATED or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def enable_auth(auth) -> str:
    auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="root", password="rootpw"), timeout=10)
    auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="root"), timeout=10)
    auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"), timeout=10)
    auth.AuthEnable(rpc_pb2.AuthEnableRequest(), timeout=10)
    return auth.Authenticate(rpc_pb2.AuthenticateRequest(name="root", password="rootpw"), timeout=10).token


def test_a_token_from_one_member_works_on_the_others(make_cluster):
    cluster = make_cluster(3)
    endpoints = [m.endpoint for m in cluster.members]
    channels, auths, kvs = zip(*(stubs(e) for e in endpoints))
    try:
        root = [("token", enable_auth(auths[0]))]
        auths[0].UserAdd(rpc_pb2.AuthUserAddRequest(name="u", password="pw"), metadata=root, timeout=10)
        auths[0].RoleAdd(rpc_pb2.AuthRoleAddRequest(name="r"), metadata=root, timeout=10)
        auths[0].RoleGrantPermission(rpc_pb2.AuthRoleGrantPermissionRequest(
            name="r", perm=auth_pb2.Permission(permType=auth_pb2.Permission.READWRITE, key=b"k")),
            metadata=root, timeout=10)
        auths[0].UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="u", role="r"), metadata=root, timeout=10)
        # the user's token, asked of member 1, is good on member 2
        token = [("token", auths[1].Authenticate(rpc_pb2.AuthenticateRequest(name="u", password="pw"),
                                                 timeout=10).token)]
        eventually(lambda: kvs[2].Put(rpc_pb2.PutRequest(key=b"k", value=b"v"), metadata=token, timeout=10))
        with pytest.raises(grpc.RpcError) as denied:
            kvs[2].Put(rpc_pb2.PutRequest(key=b"other", value=b"v"), metadata=token, timeout=10)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        # the user goes: its token is refused by every member
        auths[2].UserDelete(rpc_pb2.AuthUserDeleteRequest(name="u"), metadata=root, timeout=10)
        for kv in kvs:
            deadline = time.monotonic() + 10
            while True:
                try:
                    kv.Range(rpc_pb2.RangeRequest(key=b"k"), metadata=token, timeout=10)
                except grpc.RpcError as e:
                    assert e.code() == grpc.StatusCode.UNAUTHENTICATED, e
                    assert e.details() == "etcdserver: invalid auth token"
                    break
                assert time.monotonic() < deadline, "a deleted user's token still works"
                time.sleep(0.05)
    finally:
        for channel in channels:
            channel.close()


def test_an_unused_token_lapses(make_cluster):
    # uses 3.5 s apart on a 6 s time to live: a busy machine may delay each
    # call by up to 2.5 s before the test stops meaning what it says
    cluster = make_cluster(1, extra_args=["--auth-token-ttl", "6"])
    channel, auth, kv = stubs(cluster.members[0].endpoint)
    try:
        token = [("token", enable_auth(auth))]
        kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v"), metadata=token, timeout=10)
        time.sleep(3.5)
        kv.Range(rpc_pb2.RangeRequest(key=b"k"), metadata=token, timeout=10)  # a use restarts its time
        time.sleep(3.5)
        kv.Range(rpc_pb2.RangeRequest(key=b"k"), metadata=token, timeout=10)  # 7 s after it was issued
        time.sleep(6.5)
        with pytest.raises(grpc.RpcError) as lapsed:
            kv.Range(rpc_pb2.RangeRequest(key=b"k"), metadata=token, timeout=10)
        assert lapsed.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        channel.close()


def test_jwt_tokens_work_on_every_member_and_age_with_the_auth_store(make_cluster, tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = tmp_path / "jwt.key", tmp_path / "jwt.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    cluster = make_cluster(3, extra_args=["--auth-token", f"jwt,pub-key={public},priv-key={private},"
                                                          "sign-method=RS256,ttl=10m"])
    channels, auths, kvs = zip(*(stubs(m.endpoint) for m in cluster.members))
    try:
        token = enable_auth(auths[0])
        assert token.count(".") == 2  # header.claims.signature
        root = [("token", token)]
        for kv in kvs:  # no member needs to have seen the Authenticate: the signature says it all
            kv.Put(rpc_pb2.PutRequest(key=b"k", value=b"v"), metadata=root, timeout=10)
        auths[1].RoleAdd(rpc_pb2.AuthRoleAddRequest(name="r"), metadata=root, timeout=10)
        for kv in kvs:  # the auth store moved on: the token is old everywhere once applied
            deadline = time.monotonic() + 10
            while True:
                try:
                    kv.Range(rpc_pb2.RangeRequest(key=b"k"), metadata=root, timeout=10)
                except grpc.RpcError as e:
                    assert (e.code(), e.details()) == (grpc.StatusCode.INVALID_ARGUMENT,
                                                       "etcdserver: revision of auth store is old")
                    break
                assert time.monotonic() < deadline, "an old token still works"
                time.sleep(0.05)
        fresh = [("token", auths[2].Authenticate(rpc_pb2.AuthenticateRequest(name="root", password="rootpw"),
                                                 timeout=10).token)]
        eventually(lambda: kvs[0].Range(rpc_pb2.RangeRequest(key=b"k"), metadata=fresh, timeout=10))
    finally:
        for channel in channels:
            channel.close()
