"""``raftkv serve``: one member of a cluster behind etcd's gRPC API."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import ssl
import tempfile
import threading
from dataclasses import dataclass, field
from urllib.parse import urlparse

import grpc
import prometheus_client

from raftkv import addresses
from raftkv.client.node import Node
from raftkv.client.passwords import DEFAULT_BCRYPT_COST
from raftkv.mvcc.store import DEFAULT_MAX_REQUEST_BYTES, StoreLimits
from raftkv.mvcc.tokens import DEFAULT_TOKEN_TTL
from raftkv.raft.collector import watch_collections
from raftkv.raft.identity import IDENTITY_FILE, DataDirError
from raftkv.raft.log_segments import log_exists
from raftkv.raft.member import MemberConfig
from raftkv.raft.membership import member_id, records_from_json
from raftkv.raft.peer_auth import PeerSecurity, is_loopback
from raftkv.raft.transport import query_members
from raftkv.server.auth_tokens import TokenFlagError, token_provider
from raftkv.server.context import ServerContext
from raftkv.server.gateway import GatewayServer
from raftkv.server.http import MetricsHTTPServer
from raftkv.server.maintenance import ETCD_API_VERSION
from raftkv.server.metrics import ServerMetrics
from raftkv.server.peer_tls import PeerTLSError, PeerTLSFlags, peer_security
from raftkv.server.server import GRPC_OVERHEAD_BYTES, build_server

log = logging.getLogger(__name__)


class ConfigError(ValueError):
    """A flag value that cannot work; the message says which and why."""


class MemberFailed(RuntimeError):
    """The member stopped: its storage failed (the message says how)."""


@dataclass
class ServeConfig:
    name: str = "default"
    data_dir: str | None = None
    listen_client_urls: list[str] = field(default_factory=lambda: ["http://127.0.0.1:2379"])
    advertise_client_urls: list[str] | None = None
    listen_peer_urls: list[str] = field(default_factory=lambda: ["http://127.0.0.1:2380"])
    initial_advertise_peer_urls: list[str] | None = None
    initial_cluster: str | None = None
    initial_cluster_state: str = "new"
    initial_cluster_token: str = "etcd-cluster"
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES
    quota_backend_bytes: int = 0
    heartbeat_interval_ms: int = 50
    election_timeout_ms: int = 500
    snapshot_count: int = 100_000
    cert_file: str | None = None
    key_file: str | None = None
    trusted_ca_file: str | None = None
    client_cert_auth: bool = False
    peer_secret: str | None = None
    peer_tls: PeerTLSFlags = field(default_factory=PeerTLSFlags)
    insecure_peer: bool = False
    listen_metrics_urls: list[str] = field(default_factory=list)
    listen_client_http_urls: list[str] = field(default_factory=list)
    auth_token: str = "simple"
    auth_token_ttl: int = DEFAULT_TOKEN_TTL
    bcrypt_cost: int = DEFAULT_BCRYPT_COST
    strict_reconfig_check: bool = True


def host_port(url: str) -> str:
    try:
        return addresses.host_port(url)
    except addresses.BadURL as e:
        raise ConfigError(str(e)) from None


def parse_initial_cluster(value: str) -> dict[str, str]:
    members: dict[str, str] = {}
    for part in value.split(","):
        name, sep, url = part.strip().partition("=")
        if not sep or not name or not url:
            raise ConfigError(f"--initial-cluster: {part!r} is not name=peer-url")
        members[name] = host_port(url)
    return members


def cluster_id(members: dict[str, str], token: str = "etcd-cluster") -> int:
    """The id of a new cluster: its members' names and peer addresses, and
    --initial-cluster-token (so two clusters on the same addresses differ)."""
    text = ",".join(f"{name}={members[name]}" for name in sorted(members))
    if token != "etcd-cluster":
        text += f"/{token}"
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") >> 1


@dataclass
class Joining:
    """What a member joining a running cluster learns from it first."""

    cluster_id: int
    learner: bool


def ask_running_cluster(address: str, peers, security: PeerSecurity, timeout: float = 2.0) -> Joining | None:
    """Ask the running members for the cluster's id and whether ``address``
    was added as a learner (``etcdctl member add --learner``)."""
    for peer in peers:
        if peer == address:
            continue
        try:
            answer = query_members(peer, security, sender=address, timeout=timeout)
            records = records_from_json(answer.members_json)
        except (OSError, ValueError, TypeError, KeyError) as e:
            log.info("could not ask a peer about the cluster peer=%s error=%s", peer, e)
            continue
        return Joining(answer.cluster_id, any(r.address == address and r.is_learner for r in records))
    return None


def _url_host(url: str) -> str:
    parsed = urlparse(url if "://" in url else "http://" + url)
    return parsed.hostname or ""


def _peer_security(config: ServeConfig, data_dir: str, peer_urls: list[str]) -> PeerSecurity:
    """Peer TLS for https peer URLs, the secret, and the refusal to expose
    an unauthenticated peer port beyond loopback."""
    schemes = {urlparse(u).scheme for u in peer_urls if "://" in u} or {"http"}
    tls = config.peer_tls
    if "https" in schemes and not tls.given:
        raise ConfigError("https peer URLs need --peer-cert-file and --peer-key-file (or --peer-auto-tls)")
    if tls.given and "https" not in schemes:
        log.warning("peer TLS flags are ignored: the peer URLs are http, not https")
        tls = PeerTLSFlags()
    hosts = sorted({_url_host(u) for u in peer_urls})
    try:
        security = peer_security(tls, config.peer_secret, data_dir, hosts)
    except PeerTLSError as e:
        raise ConfigError(str(e)) from None
    exposed = [h for h in hosts if not is_loopback(h)]
    if exposed and not security.authenticated:
        if not config.insecure_peer:
            raise ConfigError(
                f"the peer port listens beyond loopback ({', '.join(exposed)}) with no peer authentication: "
                "give every member the same --peer-secret-file, or peer TLS (--peer-cert-file, "
                "--peer-key-file, --peer-trusted-ca-file, --peer-client-cert-auth, https peer URLs), "
                "or say --insecure-peer if every host that can reach the peer port is trusted")
        log.warning("insecure peer port: members do not authenticate each other (--insecure-peer); "
                    "anyone who reaches %s can disturb the cluster", ",".join(exposed))
    return security


class Member:
    """A running member: the Raft node and its gRPC server."""

    def __init__(self, config: ServeConfig) -> None:
        self.config = config
        try:
            tokens = token_provider(config.auth_token, config.auth_token_ttl)
        except TokenFlagError as e:
            raise ConfigError(f"--auth-token: {e}") from None
        if not 4 <= config.bcrypt_cost <= 31:
            raise ConfigError(f"--bcrypt-cost {config.bcrypt_cost}: must be between 4 and 31")
        advertise_peers = config.initial_advertise_peer_urls or config.listen_peer_urls
        self.peer_address = host_port(advertise_peers[0])
        members = parse_initial_cluster(
            config.initial_cluster or f"{config.name}={advertise_peers[0]}")
        if members.get(config.name) != self.peer_address:
            raise ConfigError(
                f"--initial-cluster has no member {config.name!r} at {self.peer_address} "
                f"(--name and --initial-advertise-peer-urls must appear in it)")
        # as etcd: listen on --listen-peer-urls, be known by the advertised URL
        listen_peer = host_port(config.listen_peer_urls[0])
        data_dir = config.data_dir or f"{config.name}.raftkv"
        security = _peer_security(config, data_dir, list(config.listen_peer_urls) + list(advertise_peers))
        new_data = not os.path.exists(os.path.join(data_dir, IDENTITY_FILE)) \
            and not log_exists(data_dir)
        learner = False
        new_cluster_id = cluster_id(members, config.initial_cluster_token)
        if config.initial_cluster_state == "existing" and new_data:
            joining = ask_running_cluster(self.peer_address, members.values(), security)
            if joining is None:
                raise ConfigError("--initial-cluster-state existing: no member of --initial-cluster answered "
                                  f"on its peer URL ({', '.join(v for v in members.values() if v != self.peer_address)})")
            learner, new_cluster_id = joining.learner, joining.cluster_id
        member_config = MemberConfig(
            bind_address=listen_peer,
            heartbeat_interval=config.heartbeat_interval_ms / 1000,
            election_timeout_min=config.election_timeout_ms / 1000,
            election_timeout_max=2 * config.election_timeout_ms / 1000,
            peer_security=security,
            snapshot_min_entries=config.snapshot_count,
            limits=StoreLimits(max_request_bytes=config.max_request_bytes,
                               quota_backend_bytes=config.quota_backend_bytes),
            cluster_id=new_cluster_id,
            auth_token_ttl=config.auth_token_ttl,
            tokens=tokens,
            strict_reconfig_check=config.strict_reconfig_check,
        )
        client_urls = config.advertise_client_urls or config.listen_client_urls
        try:
            self.node = Node(self.peer_address, list(members.values()), data_dir, member_config,
                             name=config.name, client_urls=client_urls, learner=learner)
        except DataDirError as e:
            raise ConfigError(str(e)) from None
        self.context = ServerContext(
            kv=self.node,
            cluster_id=self.node.member.identity.cluster_id,
            member_id=member_id(self.peer_address),
            name=config.name,
            client_urls=client_urls,
            peer_urls=advertise_peers,
            bcrypt_cost=config.bcrypt_cost,
        )
        # a serve process exports etcd's series only, without the *_created
        # companions prometheus-client adds by default
        prometheus_client.disable_created_metrics()
        self.metrics = ServerMetrics(self.context, ETCD_API_VERSION)
        self.server = build_server(
            self.context,
            [host_port(url) for url in config.listen_client_urls],
            config.max_request_bytes,
            credentials=self._credentials(),
            metrics=self.metrics,
        )
        self.gateway: GatewayServer | None = None
        self._gateway_dir: str | None = None
        if config.listen_client_http_urls:
            # the gateway calls the gRPC server on a socket only this process's user can open
            self._gateway_dir = tempfile.mkdtemp(prefix="raftkv-gateway-")
            target = f"unix:{os.path.join(self._gateway_dir, 'grpc.sock')}"
            self.server.add_port(target, None)
            try:
                self.gateway = GatewayServer(self.context, self.metrics, config.listen_client_http_urls, target,
                                             ETCD_API_VERSION, config.max_request_bytes + GRPC_OVERHEAD_BYTES,
                                             self._http_tls())
            except ValueError as e:
                raise ConfigError(str(e)) from None
        self.http: MetricsHTTPServer | None = None
        if config.listen_metrics_urls:
            try:
                self.http = MetricsHTTPServer(self.context, self.metrics, config.listen_metrics_urls,
                                              self._http_tls())
            except ValueError as e:
                raise ConfigError(str(e)) from None

    def _credentials(self) -> grpc.ServerCredentials | None:
        config = self.config
        if not config.cert_file and not config.key_file:
            return None
        if not (config.cert_file and config.key_file):
            raise ConfigError("--cert-file and --key-file go together")
        with open(config.key_file, "rb") as f:
            key = f.read()
        with open(config.cert_file, "rb") as f:
            cert = f.read()
        ca = None
        if config.trusted_ca_file:
            with open(config.trusted_ca_file, "rb") as f:
                ca = f.read()
        return grpc.ssl_server_credentials(
            [(key, cert)], root_certificates=ca, require_client_auth=config.client_cert_auth)

    def _http_tls(self) -> ssl.SSLContext | None:
        """TLS for https:// metrics URLs: the client certificate and CA, as etcd uses."""
        config = self.config
        if not (config.cert_file and config.key_file):
            return None
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(config.cert_file, config.key_file)
        if config.trusted_ca_file:
            tls.load_verify_locations(config.trusted_ca_file)
        if config.client_cert_auth:
            tls.verify_mode = ssl.CERT_REQUIRED
        return tls

    def start(self) -> None:
        self.server.start()
        if self.http is not None:
            self.http.start()
            log.info("serving metrics and health urls=%s", ",".join(self.http.urls))
        if self.gateway is not None:
            self.gateway.start()
            log.info("serving the JSON gateway urls=%s", ",".join(self.gateway.urls))
        log.info("serving name=%s clients=%s peer=%s", self.config.name,
                 ",".join(self.context.client_urls), self.peer_address)

    def stop(self) -> None:
        if self.http is not None:
            self.http.stop()
        if self.gateway is not None:
            self.gateway.stop()
        self.server.stop(grace=1).wait()
        self.node.close()
        if self._gateway_dir is not None:
            shutil.rmtree(self._gateway_dir, ignore_errors=True)


def run(config: ServeConfig) -> None:
    """Serve until SIGTERM or SIGINT."""
    member = Member(config)
    stopping = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.set())
    member.start()
    watch_collections(freeze_survivors=True)
    failure = None
    while not stopping.wait(0.2):
        raft = member.node.member
        if raft.removed.is_set():
            log.warning("the member has been permanently removed from the cluster; stopping")
            break
        if raft.failed.is_set():
            failure = raft.failure
            break
    log.info("stopping name=%s", config.name)
    member.stop()
    if failure is not None:
        raise MemberFailed(f"stopped: {failure}; free space or fix the disk under {raft.data_dir}, "
                           "then start the member again") from None
