"""--auth-token as etcd reads it."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from raftkv.mvcc.tokens import JWTTokens, SimpleTokens
from raftkv.server.auth_tokens import TokenFlagError, go_duration, token_provider


@pytest.fixture
def key_files(tmp_path):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private, public = tmp_path / "jwt.key", tmp_path / "jwt.pub"
    private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                          serialization.NoEncryption()))
    public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(private), str(public)


def test_simple_and_jwt(key_files):
    private, public = key_files
    assert isinstance(token_provider("simple", 300), SimpleTokens)
    jwt = token_provider(f"jwt,pub-key={public},priv-key={private},sign-method=RS256,ttl=10m", 300)
    assert isinstance(jwt, JWTTokens) and jwt.ttl == 600 and jwt.sign_method == "RS256"
    assert token_provider(f"jwt,pub-key={public},sign-method=RS256", 300).ttl == 300  # etcd's 5m


@pytest.mark.parametrize(("flag", "problem"), [
    ("opaque", "unknown token type 'opaque'"),
    ("jwt,pub-key=/nonexistent,sign-method=RS256", "pub-key '/nonexistent': No such file or directory"),
    ("jwt,sign-method=RS256,colour=red", "unknown jwt option 'colour=red'"),
    ("jwt,pub-key=PUB", "jwt needs sign-method"),
    ("jwt,pub-key=PUB,sign-method=RS256,ttl=soon", "ttl 'soon' is not a duration"),
    ("jwt,pub-key=PUB,sign-method=XX999", "unknown sign-method 'XX999'"),
])
def test_what_cannot_work(key_files, flag, problem):
    with pytest.raises(TokenFlagError, match=problem):
        token_provider(flag.replace("PUB", key_files[1]), 300)


def test_go_durations():
    assert go_duration("5m") == 300 and go_duration("1h30m") == 5400 and go_duration("1.5s") == 1.5
    with pytest.raises(TokenFlagError):
        go_duration("5 m")
