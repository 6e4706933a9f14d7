"""Peer security with etcd's flags: peer TLS, allowed CN, auto TLS, the peer
secret, and the refusal to expose an unauthenticated peer port.

Certificates are made at test time (peer_certs.py); the first tests check
that helper on its own (a loopback TLS handshake with client auth), so a
failure of the cluster tests below is about raftkv, not about the certificates.

The contract the cluster tests hold raftkv to:

- ``--peer-cert-file/--peer-key-file/--peer-trusted-ca-file/--peer-client-cert-auth``
  with https peer URLs: members authenticate each other with certificates;
  the cluster elects, replicates, and survives kill -9 of its leader;
- a member whose certificate another CA signed, whose CN is not the one
  ``--peer-cert-allowed-cn`` names, or whose ``--peer-secret-file`` differs,
  cannot join: the others form the cluster without it, it never gets the
  data, and the members it tried log a WARNING ``peer connection refused``;
- ``--peer-auto-tls``: self-signed certificates, the cluster still forms;
- a peer URL beyond loopback with neither a peer secret nor peer TLS is
  refused at startup (the message names ``--insecure-peer``); with
  ``--insecure-peer`` the member starts and logs a WARNING saying "insecure".

Who dials whom is the transport's business (pysyncobj's rule: the greater
address dials; etcd: everyone dials everyone). The member that must be
refused is given the greatest peer address, so it is a dialer under either
rule and the members it dials are the ones that refuse and log it.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from raftkv.client.remote import Client
from raftkv.cluster.local import LocalCluster, free_ports
from raftkv.errors import RaftKVError

from fault_helpers import retry, wait_until  # tests/raft is on sys.path under pytest
from peer_certs import CertFiles, CertificateAuthority, member_certs, peer_tls_args

NAMES = ["m0", "m1", "m2"]


# ---- the certificate helper on its own ---------------------------------------------------------


def _server_context(files: CertFiles, trusted_ca: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.cert, files.key)
    ctx.load_verify_locations(trusted_ca)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _client_context(files: CertFiles | None, trusted_ca: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if trusted_ca is None:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    else:
        ctx.load_verify_locations(trusted_ca)   # check_hostname and CERT_REQUIRED by default
    if files is not None:
        ctx.load_cert_chain(files.cert, files.key)
    return ctx


def _common_name(cert: dict) -> str:
    return dict(x[0] for x in cert["subject"])["commonName"]


def _loopback_handshake(server_ctx: ssl.SSLContext, client_ctx: ssl.SSLContext,
                        server_hostname: str) -> tuple[dict, dict]:
    """A TLS connection over 127.0.0.1 with one round trip; returns (the
    certificate the server saw from the client, the one the client saw)."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    port = listener.getsockname()[1]
    seen: dict = {}

    def serve() -> None:
        try:
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen["client_cert"] = tls.getpeercert()
                tls.sendall(tls.recv(5).upper())
        except Exception as e:  # reported to the test below
            seen["error"] = e

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with client_ctx.wrap_socket(raw, server_hostname=server_hostname) as tls:
                tls.sendall(b"hello")
                assert tls.recv(5) == b"HELLO"
                server_cert = tls.getpeercert()
    finally:
        thread.join(timeout=10)
        listener.close()
    if "error" in seen:
        raise seen["error"]
    return seen["client_cert"], server_cert


def test_certificates_complete_a_tls_handshake_with_client_auth(tmp_path):
    ca, files = member_certs(tmp_path, NAMES)
    for hostname in ("127.0.0.1", "localhost"):   # both SANs, checked by ssl's hostname matching
        client_seen_by_server, server_seen_by_client = _loopback_handshake(
            _server_context(files["m0"], files["m0"].ca), _client_context(files["m1"], files["m1"].ca),
            server_hostname=hostname)
        assert _common_name(client_seen_by_server) == "m1"
        assert _common_name(server_seen_by_client) == "m0"
    cert = x509.load_pem_x509_certificate(Path(files["m2"].cert).read_bytes())
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "m2"
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(eku)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    assert san.get_values_for_type(x509.DNSName) == ["localhost"]
    assert cert.issuer == ca.cert.subject
    assert oct(os.stat(files["m2"].key).st_mode & 0o777) == "0o600"


def test_a_certificate_from_the_unrelated_ca_is_rejected(tmp_path):
    ca, files = member_certs(tmp_path / "cluster", NAMES)
    stranger = CertificateAuthority("stranger CA").issue("m2").write(tmp_path / "stranger")
    # as a client: the server (trusting only the cluster's CA) refuses it
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _loopback_handshake(_server_context(files["m0"], files["m0"].ca),
                            _client_context(stranger, files["m0"].ca), server_hostname="127.0.0.1")
    # as a server: a client trusting only the cluster's CA refuses it
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _loopback_handshake(_server_context(stranger, files["m0"].ca),
                            _client_context(files["m1"], files["m1"].ca), server_hostname="127.0.0.1")


# ---- clusters -----------------------------------------------------------------------------------


def ordered_base_port(per_member: int = 2, size: int = 3) -> int:
    """A base port for LocalCluster(base_port=...) whose whole block is free
    now, below the ephemeral range and 5 digits long: member i's peer address
    then sorts after member i-1's (as strings too), so the last member has the
    greatest address."""
    block = per_member * size
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 32000 - block)
        sockets = []
        try:
            for port in range(base, base + block):
                s = socket.socket()
                s.bind(("127.0.0.1", port))
                sockets.append(s)
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
        return base
    raise RuntimeError("no free block of ports between 20000 and 32000")


@pytest.fixture
def clusters(request, tmp_path) -> Iterator:
    """make(size, peer_scheme=..., extra_args=..., member_args=[[...], ...],
    ordered=False) -> LocalCluster, not started. Like conftest's make_cluster:
    data and logs under tmp_path, every member stopped at teardown, member logs
    in a failing test's report."""
    made: list[LocalCluster] = []
    request.node._raftkv_clusters = made

    def make(size: int = 3, *, peer_scheme: str = "http", extra_args: list[str] | None = None,
             member_args: list[list[str]] | None = None, ordered: bool = False) -> LocalCluster:
        cluster = LocalCluster(size, str(tmp_path / f"cluster{len(made)}"), extra_args=extra_args,
                               peer_scheme=peer_scheme, base_port=ordered_base_port(size=size) if ordered else None)
        made.append(cluster)
        for member, args in zip(cluster.members, member_args or []):
            member.extra_args.extend(args)
        return cluster

    try:
        yield make
    finally:
        for cluster in made:
            cluster.stop()


def _log_tail(path: str, lines: int = 25) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def wait_has_leader(cluster: LocalCluster, index: int, timeout: float = 45.0) -> None:
    """Until the member reports a leader; fails at once if its process exits."""
    member = cluster.members[index]
    deadline = time.monotonic() + timeout
    while True:
        if not member.running:
            raise AssertionError(f"{member.name} exited with code {member.process.returncode}:\n"
                                 f"{_log_tail(member.log_path)}")
        try:
            if cluster.member_status(index).leader:
                return
        except RaftKVError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{member.name} saw no leader within {timeout}s:\n{_log_tail(member.log_path)}")
        time.sleep(0.1)


def start(cluster: LocalCluster, ready: list[int] | None = None, timeout: float = 45.0) -> None:
    """Start every member; wait until each of ``ready`` (default: all) sees a leader."""
    for i in range(len(cluster.members)):
        cluster.start_member(i)
    for i in (range(len(cluster.members)) if ready is None else ready):
        wait_has_leader(cluster, i, timeout)


def refusal_lines(log_path: str, port: int | None = None) -> list[str]:
    """WARNING lines with 'peer connection refused' (naming peer=127.0.0.1:<port> if given)."""
    pattern = re.compile(rf"peer=127\.0\.0\.1:{port}(?!\d)" if port is not None else "")
    with open(log_path, errors="replace") as f:
        return [line for line in f
                if "WARNING" in line and "peer connection refused" in line and pattern.search(line)]


def assert_refusals_logged(cluster: LocalCluster, members: list[int], *, port: int | None = None,
                           timeout: float = 15.0) -> None:
    wait_until(lambda: all(refusal_lines(cluster.members[i].log_path, port) for i in members),
               timeout=timeout,
               what=f"a WARNING 'peer connection refused'{f' peer=127.0.0.1:{port}' if port else ''} "
                    f"in the logs of {[cluster.members[i].name for i in members]}",
               describe=lambda: {cluster.members[i].name: len(refusal_lines(cluster.members[i].log_path, port))
                                 for i in members})


def write_through(cluster: LocalCluster, members: list[int], prefix: str, count: int) -> dict[bytes, bytes]:
    """``count`` puts through each of ``members``' own endpoints."""
    written = {}
    for i in members:
        with Client([cluster.members[i].endpoint], timeout=2.0) as c:
            for n in range(count):
                key, value = f"{prefix}m{i}/{n:03d}", f"v{n}-through-m{i}"
                retry(lambda: c.put(key, value), timeout=20, what=f"put {key} through m{i}")
                written[key.encode()] = value.encode()
    return written


def wait_replicated(cluster: LocalCluster, prefix: str, written: dict[bytes, bytes],
                    members: list[int] | None = None, timeout: float = 30.0) -> None:
    """Until a serializable read under ``prefix`` on each of ``members``
    (default: all) shows exactly ``written``."""
    indexes = list(range(len(cluster.members))) if members is None else members
    seen: dict[str, object] = {}

    def everywhere() -> bool:
        for i in indexes:
            with Client([cluster.members[i].endpoint], timeout=2.0) as c:
                r = c.range(prefix, prefix=True, serializable=True)
            seen[cluster.members[i].name] = got = {kv.key: kv.value for kv in r.kvs}
            if got != written:
                return False
        return True

    wait_until(everywhere, timeout=timeout, what=f"{len(written)} keys under {prefix} on members {indexes}",
               describe=lambda: {name: (len(got), sorted(set(written) - set(got))[:3])
                                 for name, got in seen.items()})


def wait_answers(cluster: LocalCluster, index: int, timeout: float = 45.0) -> int:
    """Until the member answers a status request (leader or not); its leader
    id. Fails at once if its process exits."""
    member = cluster.members[index]
    deadline = time.monotonic() + timeout
    while True:
        if not member.running:
            raise AssertionError(f"{member.name} exited with code {member.process.returncode}:\n"
                                 f"{_log_tail(member.log_path)}")
        try:
            return cluster.member_status(index).leader
        except RaftKVError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{member.name} did not answer within {timeout}s:\n{_log_tail(member.log_path)}")
        time.sleep(0.1)


def assert_never_gets_data(cluster: LocalCluster, index: int, keys: list[bytes], window: float = 5.0) -> None:
    """For ``window`` seconds: the member's serializable reads of ``keys`` find
    nothing and its status names no leader (a member that errors counts as
    having nothing)."""
    member = cluster.members[index]
    deadline = time.monotonic() + window
    with Client([member.endpoint], timeout=1.0) as c:
        while True:
            for key in keys:
                try:
                    kv = c.get(key, serializable=True)
                except RaftKVError:
                    kv = None
                assert kv is None, f"{member.name} was refused yet applied {key!r} = {kv.value!r}"
            try:
                leader = c.status().leader
            except RaftKVError:
                leader = 0
            assert leader == 0, f"{member.name} was refused yet follows leader {leader:x}"
            if time.monotonic() > deadline:
                return
            time.sleep(0.25)


def tls_probe(port: int, ctx: ssl.SSLContext, timeout: float = 5.0) -> tuple[str, int]:
    """Connect to a peer port with TLS; ("refused", local port) when the
    handshake fails or the member closes the connection after it (TLS 1.3
    reports a rejected client certificate only after the client's handshake
    ends), ("open", local port) when the connection is still up after ``timeout``."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as raw:
        local = raw.getsockname()[1]
        try:
            with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.settimeout(timeout)
                if tls.recv(1) == b"":
                    return "refused", local
                return "answered", local
        except (ssl.SSLError, ConnectionError):
            return "refused", local
        except socket.timeout:
            return "open", local


# ---- 1. a TLS cluster ------------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_peer_tls_cluster_elects_replicates_and_survives_leader_kill(clusters, tmp_path):
    ca, files = member_certs(tmp_path / "certs", NAMES)
    cluster = clusters(3, peer_scheme="https",
                       member_args=[peer_tls_args(files[name]) for name in NAMES])
    assert all(m.peer_url.startswith("https://") for m in cluster.members)
    start(cluster)
    leader = cluster.leader_index(timeout=30)

    before = write_through(cluster, [0, 1, 2], "/tls/before/", 5)
    wait_replicated(cluster, "/tls/", before)

    # the peer port really is TLS, with the member's own certificate
    with socket.create_connection(("127.0.0.1", cluster.members[0].peer_port), timeout=5) as raw:
        with _client_context(files["m1"], ca.write_ca(tmp_path / "ca.pem")).wrap_socket(
                raw, server_hostname="127.0.0.1") as tls:
            assert _common_name(tls.getpeercert()) == "m0"
    # and a dialer without a client certificate is refused, and logged with its address
    verdict, port = tls_probe(cluster.members[0].peer_port, _client_context(None, str(tmp_path / "ca.pem")))
    assert verdict == "refused", f"m0's peer port accepted a TLS client without a certificate ({verdict})"
    assert_refusals_logged(cluster, [0], port=port)

    cluster.kill(leader)
    survivors = [i for i in range(3) if i != leader]
    new_leader = cluster.leader_index(timeout=30, exclude={leader})
    assert new_leader != leader
    after = write_through(cluster, survivors, "/tls/after/", 5)
    wait_replicated(cluster, "/tls/", {**before, **after}, members=survivors)

    # the killed member comes back over TLS and catches up
    cluster.start_member(leader)
    wait_has_leader(cluster, leader)
    wait_replicated(cluster, "/tls/", {**before, **after})


# ---- 2. a certificate from another CA ------------------------------------------------------------


@pytest.mark.timeout(180)
def test_member_with_a_certificate_from_another_ca_cannot_join(clusters, tmp_path):
    ca, files = member_certs(tmp_path / "certs", ["m0", "m1"])
    stranger = CertificateAuthority("stranger CA").issue("m2").write(tmp_path / "certs" / "stranger")
    cluster = clusters(3, peer_scheme="https", ordered=True, member_args=[
        peer_tls_args(files["m0"]),
        peer_tls_args(files["m1"]),
        # it knows (and trusts) the cluster's CA; its own certificate is signed by another
        peer_tls_args(stranger, trusted_ca=files["m0"].ca),
    ])
    start(cluster, ready=[0, 1])
    leader = cluster.leader_index(timeout=30, exclude={2})
    assert leader in (0, 1)
    written = write_through(cluster, [0, 1], "/stranger/", 3)
    wait_replicated(cluster, "/stranger/", written, members=[0, 1])

    assert_never_gets_data(cluster, 2, list(written))
    assert_refusals_logged(cluster, [0, 1])


# ---- 3. --peer-cert-allowed-cn ----------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_peer_cert_allowed_cn_refuses_other_common_names(clusters, tmp_path):
    """As etcd's own e2e test of the flag: m0 and m1 carry certificates with
    CN m0 (signed by the cluster's CA, like m2's); m2's says CN m2. Every
    member runs with --peer-cert-allowed-cn m0: m0 and m1 form the cluster,
    m2 is refused by both and gets no data."""
    ca, files = member_certs(tmp_path / "certs", NAMES, common_names={"m0": "m0", "m1": "m0", "m2": "m2"})
    cluster = clusters(3, peer_scheme="https", ordered=True,
                       extra_args=["--peer-cert-allowed-cn", "m0"],
                       member_args=[peer_tls_args(files[name]) for name in NAMES])
    start(cluster, ready=[0, 1])
    leader = cluster.leader_index(timeout=30, exclude={2})
    assert leader in (0, 1)
    written = write_through(cluster, [0, 1], "/cn/", 3)
    wait_replicated(cluster, "/cn/", written, members=[0, 1])

    assert_never_gets_data(cluster, 2, list(written))
    assert_refusals_logged(cluster, [0, 1])


@pytest.mark.timeout(180)
def test_peer_cert_allowed_cn_with_no_member_named_so_cannot_form(clusters, tmp_path):
    """Every member has a certificate of the cluster's CA, with its own name
    as CN, and all run with --peer-cert-allowed-cn m0: m1 and m2 are refused
    by everyone, so no two members can talk and no leader is ever elected."""
    ca, files = member_certs(tmp_path / "certs", NAMES)
    cluster = clusters(3, peer_scheme="https", ordered=True,
                       extra_args=["--peer-cert-allowed-cn", "m0"],
                       member_args=[peer_tls_args(files[name]) for name in NAMES])
    start(cluster, ready=[])
    for i in range(3):
        wait_answers(cluster, i)   # up, serving clients (with no leader)
    # m1 and m2 are dialers (greater addresses than m0; m2 greater than m1)
    assert_refusals_logged(cluster, [0, 1], timeout=20)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        for i, m in enumerate(cluster.members):
            assert m.running, f"{m.name} exited with {m.process.returncode}:\n{_log_tail(m.log_path)}"
            try:
                leader = cluster.member_status(i).leader
            except RaftKVError:
                continue
            assert leader == 0, f"{m.name} follows leader {leader:x} though only CN m0 is allowed"
        time.sleep(0.25)


# ---- 4. --peer-auto-tls --------------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_peer_auto_tls_cluster_forms_and_replicates(clusters):
    cluster = clusters(3, peer_scheme="https", extra_args=["--peer-auto-tls"])
    start(cluster)
    cluster.leader_index(timeout=30)
    written = write_through(cluster, [0, 1, 2], "/auto/", 3)
    wait_replicated(cluster, "/auto/", written)
    # the peer port speaks TLS with a self-signed certificate (etcd's meaning of auto TLS)
    with socket.create_connection(("127.0.0.1", cluster.members[0].peer_port), timeout=5) as raw:
        with _client_context(None, None).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
    cert = x509.load_der_x509_certificate(der)
    assert cert.issuer == cert.subject, f"not self-signed: issuer {cert.issuer}, subject {cert.subject}"


# ---- 5. mismatched peer secrets -------------------------------------------------------------------------


@pytest.mark.timeout(180)
def test_member_with_another_peer_secret_cannot_join(clusters, tmp_path):
    secret_a, secret_b = tmp_path / "a.secret", tmp_path / "b.secret"
    secret_a.write_text("the cluster's shared secret, A\n")
    secret_b.write_text("somebody else's secret, B\n")
    cluster = clusters(3, ordered=True, member_args=[
        ["--peer-secret-file", str(secret_a)],
        ["--peer-secret-file", str(secret_a)],
        ["--peer-secret-file", str(secret_b)],
    ])
    start(cluster, ready=[0, 1])
    leader = cluster.leader_index(timeout=30, exclude={2})
    assert leader in (0, 1)
    written = write_through(cluster, [0, 1], "/secret/", 3)
    wait_replicated(cluster, "/secret/", written, members=[0, 1])

    assert_never_gets_data(cluster, 2, list(written))
    assert_refusals_logged(cluster, [0, 1])


# ---- 6. an unauthenticated peer port beyond loopback ------------------------------------------------------


def non_loopback_ipv4() -> str | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("192.0.2.123", 9))   # no packet leaves: a UDP connect only picks the route
        ip = s.getsockname()[0]
    except OSError:
        return None
    finally:
        s.close()
    return None if ip.startswith("127.") or ip == "0.0.0.0" else ip


def _peer_urls(kind: str, port: int) -> tuple[str, str]:
    """(--listen-peer-urls, --initial-advertise-peer-urls) for a peer URL beyond loopback."""
    if kind == "all-interfaces":
        return f"http://0.0.0.0:{port}", f"http://127.0.0.1:{port}"
    ip = non_loopback_ipv4()
    if ip is None:
        pytest.skip("this machine has no non-loopback IPv4 address")
    return f"http://{ip}:{port}", f"http://{ip}:{port}"


@contextlib.contextmanager
def serve_process(tmp_path: Path, kind: str, extra: list[str]) -> Iterator[tuple[subprocess.Popen, int, Path]]:
    client_port, peer_port = free_ports(2)
    listen, advertise = _peer_urls(kind, peer_port)
    log_path = tmp_path / f"solo-{kind}.log"
    command = [sys.executable, "-m", "raftkv", "--log-level", "INFO", "serve", "--name", "solo",
               "--data-dir", str(tmp_path / f"solo-{kind}.raftkv"),
               "--listen-client-urls", f"http://127.0.0.1:{client_port}",
               "--listen-peer-urls", listen, "--initial-advertise-peer-urls", advertise,
               "--initial-cluster", f"solo={advertise}", *extra]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        yield process, client_port, log_path
    finally:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def _serving(client_port: int) -> bool:
    try:
        with Client([f"127.0.0.1:{client_port}"], timeout=1.0) as c:
            return bool(c.status().leader)
    except RaftKVError:
        return False


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", ["all-interfaces", "non-loopback-ip"])
def test_unauthenticated_peer_url_beyond_loopback_is_refused(tmp_path, kind):
    with serve_process(tmp_path, kind, []) as (process, client_port, log_path):
        deadline = time.monotonic() + 30
        while process.poll() is None:
            assert not _serving(client_port), (
                f"raftkv serve with a {kind} peer URL and neither a peer secret nor peer TLS started "
                f"serving instead of exiting:\n{log_path.read_text(errors='replace')[-2000:]}")
            assert time.monotonic() < deadline, "raftkv serve neither exited nor served within 30s"
            time.sleep(0.2)
        output = log_path.read_text(errors="replace")
        assert process.returncode != 0, f"exited with 0:\n{output[-2000:]}"
        assert "--insecure-peer" in output, f"the message does not name --insecure-peer:\n{output[-2000:]}"


@pytest.mark.timeout(90)
@pytest.mark.parametrize("kind", ["all-interfaces", "non-loopback-ip"])
def test_insecure_peer_flag_starts_with_a_warning(tmp_path, kind):
    with serve_process(tmp_path, kind, ["--insecure-peer"]) as (process, client_port, log_path):
        deadline = time.monotonic() + 45
        while not _serving(client_port):
            assert process.poll() is None, (f"exited with {process.returncode}:\n"
                                            f"{log_path.read_text(errors='replace')[-2000:]}")
            assert time.monotonic() < deadline, "not serving within 45s"
            time.sleep(0.2)
        warnings = [line for line in log_path.read_text(errors="replace").splitlines()
                    if "WARNING" in line and "insecure" in line.lower()]
        assert warnings, f"no WARNING line saying 'insecure':\n{log_path.read_text(errors='replace')[-2000:]}"
        # then stop it (SIGTERM); it exits cleanly
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)


@pytest.mark.timeout(90)
def test_peer_secret_on_a_peer_url_beyond_loopback_needs_no_insecure_flag(tmp_path):
    """The refusal above is about an unauthenticated port, not about binding beyond loopback."""
    secret = tmp_path / "peer.secret"
    secret.write_text("a shared secret\n")
    with serve_process(tmp_path, "all-interfaces", ["--peer-secret-file", str(secret)]) as (
            process, client_port, log_path):
        deadline = time.monotonic() + 45
        while not _serving(client_port):
            assert process.poll() is None, (f"exited with {process.returncode}:\n"
                                            f"{log_path.read_text(errors='replace')[-2000:]}")
            assert time.monotonic() < deadline, "not serving within 45s"
            time.sleep(0.2)
