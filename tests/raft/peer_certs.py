"""Certificates for the peer TLS tests, made at test time with ``cryptography``.

    ca = CertificateAuthority("raftkv test CA")
    files = ca.issue("m0").write(tmp_path / "m0")     # files.cert, files.key, files.ca
    stranger = CertificateAuthority("stranger CA")    # unrelated: nothing it signs is trusted by ``ca``

Every leaf certificate is usable for both TLS server and client authentication
(a peer both listens and dials), carries SAN IP 127.0.0.1 and DNS localhost
(plus any extra names asked for), and has the given common name (by default
the member's name, which is what ``--peer-cert-allowed-cn`` checks). Keys are
EC P-256: quick to make, and both Python's ssl and Go's crypto/tls take them.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_LIFETIME = datetime.timedelta(days=2)
_BACKDATE = datetime.timedelta(hours=1)   # tolerate a little clock skew


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class CertFiles:
    """Where one identity's PEM files were written."""

    cert: str   # the leaf certificate
    key: str    # its private key (unencrypted PKCS#8)
    ca: str     # the certificate of the CA that signed it


@dataclass(frozen=True)
class Identity:
    """A leaf certificate, its key, and the CA that issued it."""

    common_name: str
    cert: x509.Certificate
    key: ec.EllipticCurvePrivateKey
    ca: CertificateAuthority

    @property
    def cert_pem(self) -> bytes:
        return _pem_cert(self.cert)

    @property
    def key_pem(self) -> bytes:
        return _pem_key(self.key)

    def write(self, directory: str | os.PathLike) -> CertFiles:
        """Write cert.pem, key.pem (mode 0600) and ca.pem into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        cert, key, ca = d / "cert.pem", d / "key.pem", d / "ca.pem"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        os.chmod(key, 0o600)
        ca.write_bytes(self.ca.cert_pem)
        return CertFiles(cert=str(cert), key=str(key), ca=str(ca))


class CertificateAuthority:
    """A self-signed CA (basicConstraints CA:TRUE, pathlen 0) that issues leaves."""

    def __init__(self, common_name: str = "raftkv test CA") -> None:
        self.common_name = common_name
        self.key = _key()
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "raftkv tests")])
        now = _now()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )

    @property
    def cert_pem(self) -> bytes:
        return _pem_cert(self.cert)

    def write_ca(self, path: str | os.PathLike) -> str:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(self.cert_pem)
        return str(path)

    def issue(self, common_name: str, *, ips: tuple[str, ...] = ("127.0.0.1",),
              dns: tuple[str, ...] = ("localhost",)) -> Identity:
        """A leaf for ``common_name`` with SANs ``ips`` and ``dns``, valid for
        serverAuth and clientAuth."""
        key = _key()
        now = _now()
        sans: list[x509.GeneralName] = [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        sans += [x509.DNSName(name) for name in dns]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name),
                                     x509.NameAttribute(NameOID.ORGANIZATION_NAME, "raftkv tests")]))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _LIFETIME)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=True,
                                         content_commitment=False, data_encipherment=False,
                                         key_agreement=False, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName(sans), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                           critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return Identity(common_name=common_name, cert=cert, key=key, ca=self)


def member_certs(directory: str | os.PathLike, names: list[str], *, ca: CertificateAuthority | None = None,
                 common_names: dict[str, str] | None = None) -> tuple[CertificateAuthority, dict[str, CertFiles]]:
    """One CA (made unless given) and a certificate per member name, written
    under ``directory/<name>/``; ``common_names`` overrides a member's CN."""
    ca = ca or CertificateAuthority()
    common_names = common_names or {}
    files = {name: ca.issue(common_names.get(name, name)).write(Path(directory) / name) for name in names}
    return ca, files


def peer_tls_args(files: CertFiles, *, trusted_ca: str | None = None, client_cert_auth: bool = True) -> list[str]:
    """etcd's peer TLS flags for one member: its certificate and key, the CA
    it trusts (its issuer's unless ``trusted_ca``), and --peer-client-cert-auth."""
    args = ["--peer-cert-file", files.cert, "--peer-key-file", files.key,
            "--peer-trusted-ca-file", trusted_ca or files.ca]
    if client_cert_auth:
        args.append("--peer-client-cert-auth")
    return args
