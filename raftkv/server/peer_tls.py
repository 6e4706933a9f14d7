"""etcd's peer TLS flags, turned into the TLS contexts of the peer transport.

--peer-cert-file/--peer-key-file    this member's certificate, shown to peers
                                    both when accepting and when dialing
--peer-trusted-ca-file              the CA peers' certificates must chain to
--peer-client-cert-auth             accepting: a dialing peer must show a certificate
--peer-cert-allowed-cn              accepting: and its CN must be this one
--peer-auto-tls                     a self-signed certificate made on first
                                    start (kept in <data-dir>/fixtures/peer), and
                                    peers' certificates are not verified: traffic
                                    is encrypted, not authenticated (etcd's meaning)
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from dataclasses import dataclass

from raftkv.raft.peer_auth import PeerSecurity


class PeerTLSError(ValueError):
    """Peer TLS flags that cannot work together; the message says which."""


@dataclass
class PeerTLSFlags:
    cert_file: str | None = None
    key_file: str | None = None
    trusted_ca_file: str | None = None
    client_cert_auth: bool = False
    allowed_cn: str | None = None
    auto_tls: bool = False

    @property
    def given(self) -> bool:
        return bool(self.cert_file or self.key_file or self.auto_tls)


def _auto_certificate(directory: str, hosts: list[str]) -> tuple[str, str]:
    """A self-signed certificate and key for ``hosts``, made once and kept."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    cert_path, key_path = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    if os.path.exists(cert_path) and os.path.exists(key_path):
        return cert_path, key_path
    os.makedirs(directory, mode=0o700, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    now = datetime.datetime.now(datetime.timezone.utc)
    subject = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "raftkv auto TLS")])
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=365))
            .add_extension(x509.SubjectAlternativeName(names), critical=False)
            .sign(key, hashes.SHA256()))
    with open(key_path, "wb") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                  serialization.NoEncryption()))
    with open(cert_path, "wb") as f:
        f.write(cert.public_bytes(serialization.Encoding.PEM))
    return cert_path, key_path


def peer_security(flags: PeerTLSFlags, secret: str | None, data_dir: str, hosts: list[str]) -> PeerSecurity:
    """The peer transport's security for these flags (TLS only when given)."""
    if not flags.given:
        if flags.trusted_ca_file or flags.client_cert_auth or flags.allowed_cn:
            raise PeerTLSError("--peer-trusted-ca-file, --peer-client-cert-auth and --peer-cert-allowed-cn "
                               "need --peer-cert-file and --peer-key-file (or --peer-auto-tls)")
        return PeerSecurity.from_secret(secret)
    verify = True
    if flags.cert_file or flags.key_file:
        if not (flags.cert_file and flags.key_file):
            raise PeerTLSError("--peer-cert-file and --peer-key-file go together")
        cert, key = flags.cert_file, flags.key_file
    else:
        cert, key = _auto_certificate(os.path.join(data_dir, "fixtures", "peer"), hosts)
        verify = False  # self-signed by every member: nothing to verify against
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        for context in (server, client):
            context.minimum_version = ssl.TLSVersion.TLSv1_2
            context.load_cert_chain(cert, key)
            if flags.trusted_ca_file:
                context.load_verify_locations(flags.trusted_ca_file)
    except (OSError, ssl.SSLError) as e:
        raise PeerTLSError(f"peer TLS: {e}") from None
    if flags.trusted_ca_file and verify:
        client.check_hostname = False  # peers are checked against the CA, not by name (as etcd)
        client.verify_mode = ssl.CERT_REQUIRED
    else:
        client.check_hostname = False
        client.verify_mode = ssl.CERT_NONE
    if flags.client_cert_auth or flags.allowed_cn:
        if not flags.trusted_ca_file:
            raise PeerTLSError("--peer-client-cert-auth needs --peer-trusted-ca-file")
        server.verify_mode = ssl.CERT_REQUIRED
    return PeerSecurity.from_secret(secret, server_tls=server, client_tls=client, allowed_cn=flags.allowed_cn)
