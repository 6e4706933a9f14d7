"""--auth-token, as etcd reads it: ``simple``, or
``jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256,ttl=5m``."""

from __future__ import annotations

import re

from raftkv.mvcc.tokens import DEFAULT_JWT_TTL, JWTTokens, SimpleTokens, TokenProvider

JWT_OPTIONS = ("pub-key", "priv-key", "sign-method", "ttl")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNIT_SECONDS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


class TokenFlagError(ValueError):
    """--auth-token cannot work; the message says why."""


def go_duration(text: str) -> float:
    """Seconds in a Go duration ("5m", "1h30m", "90s")."""
    parts = _DURATION_PART.findall(text)
    if not text or "".join(n + u for n, u in parts) != text:
        raise TokenFlagError(f"ttl {text!r} is not a duration such as 5m or 90s")
    return sum(float(n) * _UNIT_SECONDS[u] for n, u in parts)


def token_provider(flag: str, simple_ttl: float) -> TokenProvider:
    kind, *options = flag.split(",")
    if kind == "simple" and not options:
        return SimpleTokens(simple_ttl)
    if kind != "jwt":
        raise TokenFlagError(f"unknown token type {kind!r}: 'simple' or 'jwt,...'")
    given: dict[str, str] = {}
    for option in options:
        name, sep, value = option.partition("=")
        if not sep or name not in JWT_OPTIONS:
            raise TokenFlagError(f"unknown jwt option {option!r} (known: {', '.join(JWT_OPTIONS)})")
        given[name] = value
    if "sign-method" not in given:
        raise TokenFlagError("jwt needs sign-method (RS256, ES256, HS256, ...)")
    keys = {}
    for name in ("pub-key", "priv-key"):
        if name in given:
            try:
                with open(given[name], "rb") as f:
                    keys[name] = f.read()
            except OSError as e:
                raise TokenFlagError(f"{name} {given[name]!r}: {e.strerror}") from None
    ttl = go_duration(given["ttl"]) if "ttl" in given else DEFAULT_JWT_TTL
    try:
        return JWTTokens(given["sign-method"], public_key=keys.get("pub-key"), private_key=keys.get("priv-key"),
                         ttl=ttl)
    except ValueError as e:
        raise TokenFlagError(str(e)) from None
