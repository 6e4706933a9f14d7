"""Password hashes for the auth store: bcrypt, at etcd's cost unless told otherwise."""

from __future__ import annotations

import bcrypt

DEFAULT_BCRYPT_COST = 10  # etcd's --bcrypt-cost default (bcrypt's own default)


def hash_password(password: str, cost: int = DEFAULT_BCRYPT_COST) -> bytes:
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(cost))


def password_matches(password: str, password_hash: bytes) -> bool:
    if not password_hash:
        return False  # a user added without a password authenticates by certificate only
    try:
        return bcrypt.checkpw(password.encode(), password_hash)
    except ValueError:  # not a bcrypt hash
        return False
