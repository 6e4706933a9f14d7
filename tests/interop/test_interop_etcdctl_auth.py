"""Auth with etcdctl, side by side with etcd: enabling it, users, roles,
permissions on keys, ranges and prefixes, password changes, revocations,
what a user without the root role may not do, and disabling it again."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from interop_tools import ETCD_BIN, ETCD_MISSING, ETCDCTL_BIN, ETCDCTL_MISSING, EtcdServer, RaftkvServer, Session, \
    run_both

pytestmark = pytest.mark.timeout(180)

ROOT = ["--user", "root:rootpw"]
U1 = ["--user", "u1:pw"]


def setup_users(s: Session) -> None:
    s.ctl("auth", "enable")                      # no root user yet
    s.ctl("user", "add", "root:rootpw")
    s.ctl("user", "add", "root:x")
    s.ctl("role", "get", "root")
    s.ctl("user", "get", "root")
    s.ctl("auth", "enable")                      # etcdctl adds the root role and grants it
    s.ctl("put", "a", "1")                       # no user
    s.ctl(*ROOT, "put", "a", "1")
    s.ctl("--user", "root:wrong", "get", "a")
    s.ctl(*ROOT, "role", "add", "r1")
    s.ctl(*ROOT, "role", "add", "r1")
    s.ctl(*ROOT, "role", "grant-permission", "r1", "read", "a")
    s.ctl(*ROOT, "role", "grant-permission", "r1", "readwrite", "--prefix", "p/")
    s.ctl(*ROOT, "role", "grant-permission", "r1", "write", "b", "c")
    s.ctl(*ROOT, "role", "get", "r1")
    s.ctl(*ROOT, "role", "get", "root")
    s.ctl(*ROOT, "role", "list")
    s.ctl(*ROOT, "user", "add", "u1:pw")
    s.ctl(*ROOT, "user", "grant-role", "u1", "r1")
    s.ctl(*ROOT, "user", "grant-role", "u1", "nope")
    s.ctl(*ROOT, "user", "get", "u1")
    s.ctl(*ROOT, "user", "list")


@pytest.fixture
def jwt_pair(tmp_path):
    """etcd and raftkv both issuing JWT tokens signed with the same RSA key."""
    if not os.path.exists(ETCD_BIN) or not os.path.exists(ETCDCTL_BIN):
        pytest.skip(ETCD_MISSING if not os.path.exists(ETCD_BIN) else ETCDCTL_MISSING)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = tmp_path / "jwt.key", tmp_path / "jwt.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    flag = ["--auth-token", f"jwt,pub-key={public},priv-key={private},sign-method=RS256,ttl=10m"]
    etcd = EtcdServer(tmp_path / "etcd", extra_args=flag)
    raftkv = RaftkvServer(tmp_path / "raftkv", extra_args=flag)
    try:
        etcd.wait_ready()
        raftkv.wait_ready()
        yield SimpleNamespace(etcd=etcd, raftkv=raftkv)
    finally:
        etcd.stop()
        raftkv.stop()


def test_auth_walkthrough(pair):
    auth_walkthrough(pair)


def test_auth_walkthrough_with_jwt_tokens(jwt_pair):
    auth_walkthrough(jwt_pair)


def auth_walkthrough(pair) -> None:
    def scenario(s: Session):
        setup_users(s)
        s.ctl(*U1, "get", "a")
        s.ctl(*U1, "put", "a", "2")
        s.ctl(*U1, "put", "p/x", "2")
        s.ctl(*U1, "get", "p/", "--prefix")
        s.ctl(*U1, "get", "b")
        s.ctl(*U1, "put", "b", "1")
        s.ctl(*U1, "put", "bb", "1")
        s.ctl(*U1, "put", "c", "1")
        s.ctl(*U1, "get", "", "--from-key")
        s.ctl(*U1, "del", "p/", "--prefix")
        s.ctl(*U1, "del", "p/x", "--prev-kv")
        s.ctl(*U1, "txn", input='val("a") = "1"\n\nput p/y 1\n\nput a 3\n')
        s.ctl(*U1, "txn", input='val("b") = "1"\n\nput p/y 1\n\nput p/z 3\n')
        s.ctl(*U1, "compaction", "2")
        s.ctl(*U1, "user", "list")
        s.ctl(*U1, "role", "add", "r2")
        s.ctl(*U1, "auth", "disable")
        s.ctl(*U1, "member", "list", "-w", "json", record=False).ok()
        s.ctl(*U1, "defrag")
        s.ctl(*U1, "endpoint", "hashkv")
        s.ctl(*ROOT, "user", "revoke-role", "u1", "r1")
        s.ctl(*U1, "get", "a")
        s.ctl(*ROOT, "user", "revoke-role", "u1", "r1")
        s.ctl(*ROOT, "user", "revoke-role", "root", "root")
        s.ctl(*ROOT, "user", "delete", "root")
        s.ctl(*ROOT, "role", "delete", "root")
        s.ctl(*ROOT, "role", "revoke-permission", "r1", "a")
        s.ctl(*ROOT, "role", "revoke-permission", "r1", "a")
        s.ctl(*ROOT, "role", "get", "r1")
        s.ctl(*ROOT, "user", "passwd", "u1", "--interactive=false", input="newpw\n")
        s.ctl(*U1, "get", "a")
        s.ctl("--user", "u1:newpw", "get", "p/", "--prefix")
        s.ctl(*ROOT, "role", "delete", "r1")
        s.ctl(*ROOT, "user", "get", "u1")
        s.ctl(*ROOT, "user", "delete", "u1")
        s.ctl(*ROOT, "user", "delete", "u1")
        s.ctl(*ROOT, "auth", "disable")
        s.ctl("put", "a", "9")
        s.ctl("user", "list")
        s.ctl("role", "list")
    run_both(pair, scenario)


def test_auth_watch_lease_lock(pair):
    def scenario(s: Session):
        setup_users(s)
        s.ctl(*U1, "watch", "b", timeout=10)  # not readable: created, then canceled
        lease = s.ctl(*ROOT, "lease", "grant", "100", record=False).ok().out.split()[1]
        s.ctl(*ROOT, "put", "a", "leased", "--lease", lease)
        s.ctl(*U1, "lease", "revoke", lease)  # it would delete a, which u1 may only read
        s.ctl(*ROOT, "put", "p/l", "leased", "--lease", lease, record=False).ok()
        s.ctl(*ROOT, "lease", "revoke", lease)
        s.ctl(*U1, "lock", "p/lock", "--", "echo", "held", timeout=15)
        s.ctl(*U1, "lock", "nolock", "--", "echo", "held", timeout=15)
        s.ctl(*ROOT, "auth", "disable")
    run_both(pair, scenario)
