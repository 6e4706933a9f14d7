"""TLS for clients: --cert-file, --key-file, --trusted-ca-file, --client-cert-auth.

A CA, a server certificate and client certificates are made here with
``cryptography``; a member serves with them, and gRPC, etcdctl and the
https metrics listener are checked with and without a client certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from raftkv._proto.etcdserverpb import rpc_pb2, rpc_pb2_grpc
from raftkv.cluster.local import LocalCluster, MemberProcess

from server_helpers import ETCDCTL_MISSING, HAVE_ETCDCTL, etcdctl, free_port, serves

needs_etcdctl = pytest.mark.skipif(not HAVE_ETCDCTL, reason=ETCDCTL_MISSING)


# ---- a small PKI ---------------------------------------------------------------------


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    rogue_cert: Path  # signed by another CA
    rogue_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _write_cert(cert: x509.Certificate, path: Path) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _make_ca(common_name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(_name(common_name))
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    return key, cert


def _issue(ca_key, ca_cert, common_name: str):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(_name(common_name)).issuer_name(ca_cert.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                  ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .sign(ca_key, hashes.SHA256()))
    return key, cert


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Pki:
    d = tmp_path_factory.mktemp("pki")
    ca_key, ca_cert = _make_ca("raftkv test CA")
    rogue_ca_key, rogue_ca_cert = _make_ca("someone else's CA")
    paths = Pki(d / "ca.pem", d / "server.pem", d / "server-key.pem", d / "client.pem",
                d / "client-key.pem", d / "rogue.pem", d / "rogue-key.pem")
    _write_cert(ca_cert, paths.ca)
    for (key, cert), cert_path, key_path in (
        (_issue(ca_key, ca_cert, "raftkv-server"), paths.server_cert, paths.server_key),
        (_issue(ca_key, ca_cert, "client"), paths.client_cert, paths.client_key),
        (_issue(rogue_ca_key, rogue_ca_cert, "rogue"), paths.rogue_cert, paths.rogue_key),
    ):
        _write_cert(cert, cert_path)
        _write_key(key, key_path)
    return paths


# ---- a member serving TLS ------------------------------------------------------------


class _TlsCluster(LocalCluster):
    """Client URLs with https://, as etcd wants them for TLS."""

    def command(self, member: MemberProcess) -> list[str]:
        return [arg.replace(f"http://{member.endpoint}", f"https://{member.endpoint}")
                for arg in super().command(member)]


def _credentials(pki: Pki, cert: Path | None, key: Path | None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=key.read_bytes() if key else None,
        certificate_chain=cert.read_bytes() if cert else None)


def _wait_serving(endpoint: str, credentials: grpc.ChannelCredentials, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with grpc.secure_channel(endpoint, credentials) as ch:
            try:
                if rpc_pb2_grpc.MaintenanceStub(ch).Status(rpc_pb2.StatusRequest(), timeout=2).leader:
                    return
            except grpc.RpcError:
                pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"TLS member at {endpoint} not ready")
        time.sleep(0.1)


@pytest.fixture
def tls_member(request, pki, tmp_path):
    """start(client_cert_auth) -> (cluster, metrics port); stopped at teardown."""
    clusters: list[LocalCluster] = []
    request.node._raftkv_clusters = clusters  # their logs go into a failure's report

    def start(client_cert_auth: bool):
        metrics_port = free_port()
        args = ["--cert-file", str(pki.server_cert), "--key-file", str(pki.server_key),
                "--trusted-ca-file", str(pki.ca),
                "--listen-metrics-urls", f"https://127.0.0.1:{metrics_port}"]
        if client_cert_auth:
            args.append("--client-cert-auth")
        cluster = _TlsCluster(1, str(tmp_path / f"tls{len(clusters)}"), extra_args=args)
        clusters.append(cluster)
        cluster.start_member(0)
        _wait_serving(cluster.members[0].endpoint, _credentials(pki, pki.client_cert, pki.client_key))
        return cluster, metrics_port

    try:
        yield start
    finally:
        for cluster in clusters:
            cluster.stop()


def _refused(call) -> None:
    with pytest.raises(grpc.RpcError) as info:
        call()
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE


def _https(url: str, pki: Pki, client: bool) -> tuple[int, bytes]:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if client:
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    with urllib.request.urlopen(url, context=context, timeout=10) as response:
        return response.status, response.read()


# ---- the tests -----------------------------------------------------------------------------


@pytest.mark.timeout(90)
def test_client_cert_auth_requires_a_trusted_client_certificate(tls_member, pki):
    cluster, metrics_port = tls_member(client_cert_auth=True)
    endpoint = cluster.members[0].endpoint

    with grpc.secure_channel(endpoint, _credentials(pki, pki.client_cert, pki.client_key)) as ch:
        serves(ch, b"tls/with-cert")

    # no client certificate: the handshake fails
    with grpc.secure_channel(endpoint, _credentials(pki, None, None)) as ch:
        _refused(lambda: rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"k"), timeout=5))
    # a certificate from another CA: refused as well
    with grpc.secure_channel(endpoint, _credentials(pki, pki.rogue_cert, pki.rogue_key)) as ch:
        _refused(lambda: rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"k"), timeout=5))
    # plaintext: refused
    with grpc.insecure_channel(endpoint) as ch:
        _refused(lambda: rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"k"), timeout=5))

    # the https metrics listener asks for the client certificate too
    url = f"https://127.0.0.1:{metrics_port}/health"
    assert _https(url, pki, client=True) == (200, b'{"health":"true"}')
    with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
        _https(url, pki, client=False)

    # and the member still serves the good client
    with grpc.secure_channel(endpoint, _credentials(pki, pki.client_cert, pki.client_key)) as ch:
        serves(ch, b"tls/after-refusals")


@needs_etcdctl
@pytest.mark.timeout(90)
def test_etcdctl_over_tls(tls_member, pki):
    cluster, _ = tls_member(client_cert_auth=True)
    endpoint = f"https://{cluster.members[0].endpoint}"
    flags = ["--cacert", str(pki.ca), "--cert", str(pki.client_cert), "--key", str(pki.client_key)]
    assert etcdctl(endpoint, "put", "tls-key", "tls-value", tls=flags).stdout == "OK\n"
    assert etcdctl(endpoint, "get", "tls-key", tls=flags).stdout == "tls-key\ntls-value\n"
    health = etcdctl(endpoint, "endpoint", "health", tls=flags)
    assert "is healthy" in health.stdout + health.stderr
    # without a client certificate etcdctl cannot get in
    refused = etcdctl(endpoint, "get", "tls-key", "--dial-timeout", "2s", "--command-timeout", "3s",
                      tls=["--cacert", str(pki.ca)], check=False)
    assert refused.returncode != 0
    assert "tls-value" not in refused.stdout


@needs_etcdctl
@pytest.mark.timeout(90)
def test_server_tls_without_client_auth(tls_member, pki):
    cluster, _ = tls_member(client_cert_auth=False)
    endpoint = cluster.members[0].endpoint
    # a client that only trusts the CA gets in
    with grpc.secure_channel(endpoint, _credentials(pki, None, None)) as ch:
        serves(ch, b"tls/no-client-auth")
    assert etcdctl(f"https://{endpoint}", "get", "tls/no-client-auth", "--print-value-only",
                   tls=["--cacert", str(pki.ca)]).returncode == 0
    # one that does not trust the server's CA refuses the server
    untrusting = grpc.ssl_channel_credentials(root_certificates=pki.rogue_cert.read_bytes())
    with grpc.secure_channel(endpoint, untrusting) as ch:
        _refused(lambda: rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"k"), timeout=5))


@pytest.mark.timeout(90)
def test_with_auth_on_a_client_certificate_names_its_user(tls_member, pki):
    """etcd's rule: no token, a client certificate: its common name is the user."""
    from raftkv._proto.authpb import auth_pb2

    cluster, _ = tls_member(client_cert_auth=True)
    with grpc.secure_channel(cluster.members[0].endpoint, _credentials(pki, pki.client_cert, pki.client_key)) as ch:
        auth, kv = rpc_pb2_grpc.AuthStub(ch), rpc_pb2_grpc.KVStub(ch)
        auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="root", password="rootpw"), timeout=10)
        auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"), timeout=10)
        auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="client", options=auth_pb2.UserAddOptions(no_password=True)),
                     timeout=10)
        auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="r"), timeout=10)
        auth.RoleGrantPermission(rpc_pb2.AuthRoleGrantPermissionRequest(name="r", perm=auth_pb2.Permission(
            permType=auth_pb2.Permission.READWRITE, key=b"cn/", range_end=b"cn0")), timeout=10)
        auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="client", role="r"), timeout=10)
        auth.AuthEnable(rpc_pb2.AuthEnableRequest(), timeout=10)

        kv.Put(rpc_pb2.PutRequest(key=b"cn/x", value=b"1"), timeout=10)  # as "client", its CN
        with pytest.raises(grpc.RpcError) as denied:
            kv.Put(rpc_pb2.PutRequest(key=b"other", value=b"1"), timeout=10)
        assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as no_password:
            auth.Authenticate(rpc_pb2.AuthenticateRequest(name="client", password=""), timeout=10)
        assert no_password.value.details() == "etcdserver: authentication failed, invalid user ID or password"
        # a token names its own user, whatever the certificate says
        token = auth.Authenticate(rpc_pb2.AuthenticateRequest(name="root", password="rootpw"), timeout=10).token
        kv.Put(rpc_pb2.PutRequest(key=b"other", value=b"1"), metadata=[("token", token)], timeout=10)
