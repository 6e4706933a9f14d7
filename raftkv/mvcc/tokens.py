"""Simple auth tokens: which token names which user, until it goes unused for a while.

Not replicated state: every member records the tokens it applies (an
Authenticate request carries the one its proposer chose), and forgets them
after ``ttl`` seconds without use, on restart, or when their user is deleted,
changes password, or auth is switched off. The caller supplies the clock.
"""

from __future__ import annotations

from raftkv.mvcc.auth import AuthenticateRequest, AuthResponse

DEFAULT_TOKEN_TTL = 300  # etcd's --auth-token-ttl


class SimpleTokens:
    def __init__(self, ttl: float = DEFAULT_TOKEN_TTL) -> None:
        self.ttl = ttl
        self._users: dict[str, str] = {}
        self._last_use: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._users)

    def assign(self, token: str, user: str, now: float) -> None:
        self._users[token] = user
        self._last_use[token] = now

    def user(self, token: str, now: float) -> str | None:
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
