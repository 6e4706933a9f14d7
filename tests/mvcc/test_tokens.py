"""Auth tokens: simple ones held by the members, JWTs that carry their own
meaning, signed."""

from __future__ import annotations

import base64
import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from raftkv.errors import NotSupported
from raftkv.mvcc.auth import AuthOldRevision
from raftkv.mvcc.tokens import JWTTokens, SimpleTokens


def rsa_pair() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()),
            key.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo))


@pytest.fixture(scope="module")
def rsa_keys():
    return rsa_pair()


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


def test_a_simple_token_names_its_user_until_unused_for_its_ttl():
    tokens = SimpleTokens(ttl=10)
    token = tokens.issue("u", 7, now=0)
    assert token.endswith(".7") and len(token.split(".")[0]) == 16
    tokens.assign(token, "u", 0)
    assert tokens.user(token, 9, 0) == "u"
    assert tokens.user(token, 18, 0) == "u"  # use renews it
    assert tokens.user(token, 29, 0) is None


def test_a_jwt_carries_user_revision_and_expiry(rsa_keys):
    private, public = rsa_keys
    issuer = JWTTokens("RS256", public_key=public, private_key=private, ttl=300)
    token = issuer.issue("alice", 5, now=1000)
    assert claims_of(token) == {"username": "alice", "revision": 5, "exp": 1300}
    checker = JWTTokens("RS256", public_key=public, private_key=None)  # another member: the key alone
    assert checker.user(token, 1299, 5) == "alice"
    assert checker.user(token, 1301, 5) is None  # expired
    with pytest.raises(AuthOldRevision):
        checker.user(token, 1200, 6)  # the auth store changed since


def test_a_jwt_with_another_key_or_changed_or_unsigned_is_refused(rsa_keys):
    private, public = rsa_keys
    other_private, other_public = rsa_pair()
    token = JWTTokens("RS256", public_key=other_public, private_key=other_private).issue("mallory", 1, 0)
    ours = JWTTokens("RS256", public_key=public, private_key=private)
    assert ours.user(token, 1, 1) is None
    header, payload, signature = ours.issue("alice", 1, 0).split(".")
    forged = base64.urlsafe_b64encode(b'{"username":"root","revision":1,"exp":9999999999}').rstrip(b"=").decode()
    assert ours.user(f"{header}.{forged}.{signature}", 1, 1) is None
    unsigned_header = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').rstrip(b"=").decode()
    assert ours.user(f"{unsigned_header}.{forged}.", 1, 1) is None
    assert ours.user("not a token", 1, 1) is None


def test_other_sign_methods(rsa_keys):
    secret = b"a shared secret of enough length for HMAC"
    hmac = JWTTokens("HS256", public_key=None, private_key=secret)
    assert hmac.user(hmac.issue("u", 1, 0), 1, 1) == "u"
    key = ec.generate_private_key(ec.SECP256R1())
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    ecdsa = JWTTokens("ES256", public_key=public, private_key=private)
    assert ecdsa.user(ecdsa.issue("u", 1, 0), 1, 1) == "u"


def test_what_cannot_work_is_refused_at_once(rsa_keys):
    private, public = rsa_keys
    with pytest.raises(ValueError, match="unknown sign-method 'none'"):
        JWTTokens("none", public_key=public, private_key=private)
    with pytest.raises(ValueError, match="needs pub-key"):
        JWTTokens("RS256", public_key=None, private_key=private)
    with pytest.raises(ValueError, match="do not work with ES256"):
        JWTTokens("ES256", public_key=public, private_key=private)  # RSA keys for an EC method
    with pytest.raises(NotSupported, match="no priv-key"):
        JWTTokens("RS256", public_key=public, private_key=None).issue("u", 1, 0)
