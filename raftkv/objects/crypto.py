"""Encryption at rest for Secrets (and any other resource configured): AES-GCM.

The stored value is Kubernetes' aesgcm envelope::

    k8s:enc:aesgcm:v1:<key name>:<12-byte nonce><ciphertext and 16-byte tag>

with the object's key in the store as additional authenticated data, so a
ciphertext copied to another key does not decrypt. A key file is either
Kubernetes' EncryptionConfiguration (YAML; the first aesgcm key encrypts,
every key listed decrypts, an ``identity`` provider listed first means
writes stay plaintext) or a single base64 key, named "key1".
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from raftkv.objects.errors import BadRequest, InternalError

log = logging.getLogger(__name__)

PREFIX = b"k8s:enc:"
AESGCM_PREFIX = b"k8s:enc:aesgcm:v1:"
NONCE_SIZE = 12


@dataclass(frozen=True)
class EncryptionKey:
    name: str
    secret: bytes = b""

    def __post_init__(self) -> None:
        if len(self.secret) not in (16, 24, 32):
            raise BadRequest(f"key {self.name!r}: an AES key must be 16, 24 or 32 bytes, "
                             f"not {len(self.secret)}")
        if not self.name or ":" in self.name:
            raise BadRequest(f"key name {self.name!r} must be non-empty and contain no ':'")

    def __repr__(self) -> str:  # never show the secret
        return f"EncryptionKey(name={self.name!r})"


class Encryptor:
    """Encrypts the values of the configured resources: plural names for the
    core group ("secrets"), plural.group for others ("widgets.example.com")."""

    def __init__(self, keys: list[EncryptionKey], *, resources: tuple[str, ...] = ("secrets",),
                 write_plaintext: bool = False) -> None:
        if not keys:
            raise BadRequest("encryption needs at least one key")
        names = [k.name for k in keys]
        if len(set(names)) != len(names):
            raise BadRequest(f"duplicate key names: {names}")
        self.keys = list(keys)
        self.resources = frozenset(resources)
        self.write_plaintext = write_plaintext
        self._by_name = {k.name: AESGCM(k.secret) for k in keys}

    @classmethod
    def generate(cls, name: str = "key1") -> Encryptor:
        return cls([EncryptionKey(name, AESGCM.generate_key(bit_length=256))])

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Encryptor:
        text = Path(path).read_text()
        stripped = text.strip()
        if stripped and "\n" not in stripped and ":" not in stripped:
            return cls([EncryptionKey("key1", _b64(stripped, "key1"))])
        try:
            config = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise BadRequest(f"{path}: not an EncryptionConfiguration: {e}") from None
        return cls.from_config(config)

    @classmethod
    def from_config(cls, config: Any) -> Encryptor:
        if not isinstance(config, dict) or config.get("kind") != "EncryptionConfiguration":
            raise BadRequest("not an EncryptionConfiguration")
        for entry in config.get("resources") or []:
            resources = tuple(r for r in entry.get("resources") or [])
            keys: list[EncryptionKey] = []
            first = None
            for provider in entry.get("providers") or []:
                if "aesgcm" in provider:
                    first = first or "aesgcm"
                    for k in (provider["aesgcm"] or {}).get("keys") or []:
                        keys.append(EncryptionKey(k.get("name", ""), _b64(k.get("secret", ""), k.get("name"))))
                elif "identity" in provider:
                    first = first or "identity"
                else:
                    raise BadRequest(f"unsupported encryption provider {sorted(provider)}; "
                                     "aesgcm and identity are supported")
            if keys:
                return cls(keys, resources=resources or ("secrets",), write_plaintext=first == "identity")
        raise BadRequest("the EncryptionConfiguration lists no aesgcm key")

    def write_config(self, path: str | os.PathLike[str]) -> None:
        """Save as an EncryptionConfiguration key file (mode 0600)."""
        config = {
            "apiVersion": "apiserver.config.k8s.io/v1",
            "kind": "EncryptionConfiguration",
            "resources": [{
                "resources": sorted(self.resources),
                "providers": [
                    {"aesgcm": {"keys": [{"name": k.name, "secret": base64.b64encode(k.secret).decode()}
                                         for k in self.keys]}},
                    {"identity": {}},
                ],
            }],
        }
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(config, f, sort_keys=False)

    def applies_to(self, resource: str) -> bool:
        return resource in self.resources

    def encrypt(self, plaintext: bytes, context: bytes) -> bytes:
        if self.write_plaintext:
            return plaintext
        key = self.keys[0]
        nonce = os.urandom(NONCE_SIZE)
        sealed = self._by_name[key.name].encrypt(nonce, plaintext, context)
        return AESGCM_PREFIX + key.name.encode() + b":" + nonce + sealed

    def decrypt(self, data: bytes, context: bytes) -> bytes:
        if not data.startswith(AESGCM_PREFIX):
            if data.startswith(PREFIX):
                raise InternalError("no matching prefix found for the stored value's encryption provider")
            return data  # written before encryption was configured
        rest = data[len(AESGCM_PREFIX):]
        name, sep, body = rest.partition(b":")
        aead = self._by_name.get(name.decode(errors="replace")) if sep else None
        if aead is None:
            raise InternalError(f"no key named {name.decode(errors='replace')!r} to decrypt the stored value")
        try:
            return aead.decrypt(body[:NONCE_SIZE], body[NONCE_SIZE:], context)
        except InvalidTag:
            raise InternalError("failed to decrypt the stored value: authentication failed") from None


def is_encrypted(data: bytes) -> bool:
    return data.startswith(PREFIX)


def _b64(text: str, name: Any) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"key {name!r}: the secret is not valid base64") from None


def as_encryptor(value: Encryptor | str | os.PathLike[str] | bytes | None) -> Encryptor | None:
    """An Encryptor from what ObjectStore(encryption_key=...) accepts: a key
    file path, an Encryptor, or a raw 16/24/32-byte key."""
    if value is None or isinstance(value, Encryptor):
        return value
    if isinstance(value, bytes):
        return Encryptor([EncryptionKey("key1", value)])
    return Encryptor.from_file(value)
