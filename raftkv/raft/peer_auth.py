"""Who may talk on the peer port, and how they prove it: the handshake's rules.

Every peer connection starts with a handshake, before any Raft message:

    dialer   -> HELLO   {raftkv: 1, kind, from, cluster, nonce, auth}
    listener -> ACCEPT  {cluster, nonce[, proof]}     or  REFUSE {error}
    dialer   -> PROOF   {proof}                       (with a peer secret only)

``kind`` is "member" (a voter), "learner" or "query" (a one-off question
about the membership). The listener refuses a cluster id other than its own
(when both are known), a "from" that is not a member of its cluster, and,
with a peer secret, anyone who cannot prove knowing it. The proofs are
HMAC-SHA256 over both nonces and the HELLO, so neither side can replay an
old handshake; the same secret and nonces give the session's two AES-GCM
keys, one per direction, and every later frame is sealed with a counter as
its nonce (confidentiality, integrity, no replay or reordering).

With peer TLS the connection is TLS first (certificates checked by the TLS
layer, the allowed CN by the listener) and the handshake runs inside it.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import ssl
import struct
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PROTOCOL_VERSION = 1
NONCE_SIZE = 16
HANDSHAKE_FRAME_LIMIT = 64 * 1024


class HandshakeRefused(Exception):
    """The other side may not talk to this member; the message says why."""


@dataclass
class PeerSecurity:
    """How members authenticate each other. Nothing set: only loopback is safe."""

    secret: bytes | None = None                 # from --peer-secret-file
    server_tls: ssl.SSLContext | None = None    # accepting connections (--peer-cert-file ...)
    client_tls: ssl.SSLContext | None = None    # dialing other members
    allowed_cn: str | None = None               # --peer-cert-allowed-cn

    @property
    def authenticated(self) -> bool:
        return self.secret is not None or self.server_tls is not None

    @classmethod
    def from_secret(cls, secret: str | None, **tls: object) -> PeerSecurity:
        key = hashlib.sha256(secret.encode()).digest() if secret else None
        return cls(secret=key, **tls)  # type: ignore[arg-type]


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _mac(key: bytes, label: bytes, *parts: bytes) -> bytes:
    m = hmac.new(key, label, hashlib.sha256)
    for part in parts:
        m.update(struct.pack(">I", len(part)))
        m.update(part)
    return m.digest()


def new_nonce() -> bytes:
    return os.urandom(NONCE_SIZE)


def accept_proof(secret: bytes, hello: bytes, nonce: bytes) -> bytes:
    return _mac(secret, b"raftkv-peer-accept", hello, nonce)


def dial_proof(secret: bytes, hello: bytes, accept: bytes) -> bytes:
    return _mac(secret, b"raftkv-peer-dial", hello, accept)


def proofs_match(expected: bytes, given: object) -> bool:
    return isinstance(given, bytes) and hmac.compare_digest(expected, given)


@dataclass
class FrameSeal:
    """Seals (or opens) one direction's frames: AES-GCM, a counter as nonce."""

    key: bytes
    counter: int = 0
    _aead: AESGCM | None = field(default=None, repr=False)

    def _next_nonce(self) -> bytes:
        nonce = self.counter.to_bytes(12, "big")
        self.counter += 1
        return nonce

    def seal(self, data: bytes) -> bytes:
        if self._aead is None:
            self._aead = AESGCM(self.key)
        return self._aead.encrypt(self._next_nonce(), data, None)

    def open(self, data: bytes) -> bytes:
        """Raises cryptography's InvalidTag when the frame was not sealed by the other side."""
        if self._aead is None:
            self._aead = AESGCM(self.key)
        return self._aead.decrypt(self._next_nonce(), data, None)


def session_seals(secret: bytes, dialer_nonce: bytes, listener_nonce: bytes,
                  dialing: bool) -> tuple[FrameSeal, FrameSeal]:
    """(outgoing, incoming) seals of one side of a connection."""
    base = _mac(secret, b"raftkv-peer-keys", dialer_nonce, listener_nonce)
    from_dialer = FrameSeal(_mac(base, b"from-dialer"))
    from_listener = FrameSeal(_mac(base, b"from-listener"))
    return (from_dialer, from_listener) if dialing else (from_listener, from_dialer)


def certificate_cn(tls_object: ssl.SSLObject | ssl.SSLSocket) -> str | None:
    cert = tls_object.getpeercert()
    if not cert:
        return None
    for rdn in cert.get("subject", ()):
        for name, value in rdn:
            if name == "commonName":
                return value
    return None
