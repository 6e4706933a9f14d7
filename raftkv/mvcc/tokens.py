"""Auth tokens: what an authenticated user is given, and whom a token names.

Two kinds, as etcd's --auth-token: simple tokens (the default) and signed
JWTs. Neither is replicated state. A simple token is random text every
member records when it applies the Authenticate request that carries it,
and forgets after ``ttl`` seconds without use, on restart, or when its user
is deleted, changes password, or auth is switched off. A JWT names its user,
the auth revision it was issued at and its expiry, signed: any member with
the key can check it, and one issued before the auth store last changed is
refused as old (the client authenticates again). The caller supplies the
clock.
"""

from __future__ import annotations

import secrets
import string
from typing import Protocol

import jwt

from raftkv.errors import NotSupported
from raftkv.mvcc.auth import AuthenticateRequest, AuthOldRevision, AuthResponse

DEFAULT_TOKEN_TTL = 300  # etcd's --auth-token-ttl
DEFAULT_JWT_TTL = 300  # etcd's ttl option of --auth-token jwt (5m)
SIGN_METHODS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512",
                          "HS256", "HS384", "HS512", "EdDSA"})  # never "none": a token must be signed


class TokenProvider(Protocol):
    def issue(self, user: str, auth_revision: int, now: float) -> str:
        """A token for ``user``, authenticated at ``auth_revision``."""

    def user(self, token: str, now: float, auth_revision: int) -> str | None:
        """The user ``token`` names now, or None for none."""

    def record(self, request: object, response: AuthResponse, now: float) -> None:
        """What an applied auth request means for the tokens."""

    def expire(self, now: float) -> None:
        """Forget what has expired."""


class SimpleTokens:
    def __init__(self, ttl: float = DEFAULT_TOKEN_TTL) -> None:
        self.ttl = ttl
        self._users: dict[str, str] = {}
        self._last_use: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._users)

    def issue(self, user: str, auth_revision: int, now: float) -> str:
        """As etcd makes them: 16 random letters, a dot, the auth revision."""
        letters = "".join(secrets.choice(string.ascii_letters) for _ in range(16))
        return f"{letters}.{auth_revision}"

    def assign(self, token: str, user: str, now: float) -> None:
        self._users[token] = user
        self._last_use[token] = now

    def user(self, token: str, now: float, auth_revision: int = 0) -> str | None:
        """The token's user, and the token's time to live starts again; None
        for a token unknown or expired."""
        user = self._users.get(token)
        if user is None:
            return None
        if now - self._last_use[token] > self.ttl:
            self._forget(token)
            return None
        self._last_use[token] = now
        return user

    def record(self, request: object, response: AuthResponse, now: float) -> None:
        """What an applied auth request means for the tokens: a new one, or
        those of users whose password or existence changed going away."""
        if response.token and isinstance(request, AuthenticateRequest):
            self.assign(response.token, request.name, now)
        if response.invalidated_users:
            self.invalidate(response.invalidated_users)

    def invalidate(self, users: list[str]) -> None:
        gone = set(users)
        for token in [t for t, u in self._users.items() if u in gone]:
            self._forget(token)

    def expire(self, now: float) -> None:
        for token in [t for t, used in self._last_use.items() if now - used > self.ttl]:
            self._forget(token)

    def _forget(self, token: str) -> None:
        self._users.pop(token, None)
        self._last_use.pop(token, None)


class JWTTokens:
    """etcd's JWT tokens: claims ``username``, ``revision`` and ``exp``,
    signed with ``sign_method`` (RS*, PS*, ES*, EdDSA with a key pair, HS*
    with a shared secret). Without ``private_key`` a member checks tokens but
    issues none."""

    def __init__(self, sign_method: str, *, public_key: bytes | None, private_key: bytes | None,
                 ttl: float = DEFAULT_JWT_TTL) -> None:
        if sign_method not in SIGN_METHODS:
            raise ValueError(f"unknown sign-method {sign_method!r} (one of {', '.join(sorted(SIGN_METHODS))})")
        self.sign_method = sign_method
        self.ttl = ttl
        symmetric = sign_method.startswith("HS")
        self._signing_key = private_key
        self._verifying_key = private_key if symmetric else public_key
        if self._verifying_key is None:
            raise ValueError(f"sign-method {sign_method} needs {'priv-key' if symmetric else 'pub-key'}")
        try:  # refuse unusable keys now, not at the first request
            if self._signing_key is not None:
                self.user(self.issue("check", 1, 0.0), 0.0, 0)
            else:
                jwt.get_algorithm_by_name(sign_method).prepare_key(self._verifying_key)
        except (jwt.PyJWTError, ValueError, TypeError) as e:
            raise ValueError(f"the keys do not work with {sign_method}: {e}") from None

    def issue(self, user: str, auth_revision: int, now: float) -> str:
        if self._signing_key is None:
            raise NotSupported("raftkv: this member verifies JWT tokens but has no priv-key to issue them")
        claims = {"username": user, "revision": auth_revision, "exp": int(now + self.ttl)}
        return jwt.encode(claims, self._signing_key, algorithm=self.sign_method)

    def user(self, token: str, now: float, auth_revision: int) -> str | None:
        try:
            claims = jwt.decode(token, self._verifying_key, algorithms=[self.sign_method],
                                options={"verify_exp": False, "require": ["username", "revision", "exp"]})
        except jwt.PyJWTError:
            return None
        user, revision, expiry = claims["username"], claims["revision"], claims["exp"]
        if not isinstance(user, str) or not isinstance(revision, int) or not isinstance(expiry, int | float):
            return None
        if expiry < now:
            return None
        if revision < auth_revision:
            raise AuthOldRevision()
        return user

    def record(self, request: object, response: AuthResponse, now: float) -> None:
        pass

    def expire(self, now: float) -> None:
        pass
