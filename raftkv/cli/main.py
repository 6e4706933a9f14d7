"""``raftkv``: the command line.

One command for operators and developers: ``raftkv serve`` runs a member,
``raftkv cluster up`` a local cluster; the key-value verbs (put, get, del,
watch, txn, lease, member, endpoint, compact, snapshot, lock, elect) follow
etcdctl, the object verbs under ``raftkv obj`` follow kubectl. Each verb
lives in a module of this package; this one holds the group, its global
flags and the ``serve`` and ``shell`` commands.
"""

from __future__ import annotations

import code
import logging
import os
import sys

import click

import raftkv
from raftkv.cli.context import RaftkvGroup, root_options

BANNER = """raftkv {version}: a single-member store in this process (nothing is written to disk).
`kv` is open. Try:
    kv.put("greeting", "hello")
    kv.get("greeting")
    kv.range("", prefix=True)
    kv.txn().if_(raftkv.version("greeting") > 0).then(raftkv.ops.put("seen", "yes")).commit()
    for event in kv.watch("greeting").events(): print(event)     # Ctrl-C stops
Ctrl-D leaves."""

CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(cls=RaftkvGroup, context_settings=CONTEXT_SETTINGS)
@click.version_option(raftkv.__version__, "--version", prog_name="raftkv")
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
@root_options
def cli(log_level: str) -> None:
    """raftkv: an etcd-compatible key-value store.

    \b
    A session:
        raftkv cluster up --size 3                 # three members on 2379, 2381, 2383
        export RAFTKV_ENDPOINTS=127.0.0.1:2379,127.0.0.1:2381,127.0.0.1:2383
        raftkv put greeting hello
        raftkv get greeting -w json
        raftkv watch greeting                      # in another terminal
        raftkv obj apply -f app.yaml
        raftkv obj get deploy,svc -l app=web

    Shell completion: eval "$(raftkv completion bash)" (or zsh, fish).
    """
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


def _urls(value: str | None) -> list[str] | None:
    return [u.strip() for u in value.split(",") if u.strip()] if value else None


@cli.command(global_flags=False)
@click.option("--name", default="default", show_default=True, help="Member name.")
@click.option("--data-dir", default=None, help="Data directory [default: <name>.raftkv].")
@click.option("--listen-client-urls", default="http://127.0.0.1:2379", show_default=True)
@click.option("--advertise-client-urls", default=None)
@click.option("--listen-peer-urls", default="http://127.0.0.1:2380", show_default=True)
@click.option("--initial-advertise-peer-urls", default=None)
@click.option("--initial-cluster", default=None,
              help="name=peer-url,... [default: <name>=<initial-advertise-peer-url>].")
@click.option("--initial-cluster-state", type=click.Choice(["new", "existing"]), default="new",
              show_default=True)
@click.option("--initial-cluster-token", default="etcd-cluster", show_default=True,
              help="Makes the id of a new cluster unique (raftkv cluster up picks a random one).")
@click.option("--max-request-bytes", type=int, default=1536 * 1024, show_default=True)
@click.option("--quota-backend-bytes", type=int, default=0, show_default=True,
              help="Raise the NOSPACE alarm when the store reaches this size (0: 2 GiB, negative: no quota).")
@click.option("--heartbeat-interval", type=int, default=50, show_default=True, help="Milliseconds.")
@click.option("--election-timeout", type=int, default=500, show_default=True, help="Milliseconds.")
@click.option("--snapshot-count", type=int, default=100_000, show_default=True,
              help="Log entries between snapshots (and log compaction).")
@click.option("--cert-file", default=None, help="TLS certificate for clients.")
@click.option("--key-file", default=None, help="TLS key for clients.")
@click.option("--trusted-ca-file", default=None, help="CA that signs client certificates.")
@click.option("--client-cert-auth", is_flag=True, help="Require client certificates.")
@click.option("--listen-metrics-urls", default=None,
              help="URLs serving /metrics and /health over HTTP (https with --cert-file).")
@click.option("--auth-token", default="simple", show_default=True,
              help="How auth tokens are made: 'simple' (etcd's default), or signed JWTs: "
                   "'jwt,pub-key=PATH,priv-key=PATH,sign-method=RS256,ttl=5m'.")
@click.option("--auth-token-ttl", type=int, default=300, show_default=True,
              help="Seconds a simple token lives without use.")
@click.option("--bcrypt-cost", type=int, default=10, show_default=True, help="bcrypt cost of password hashes.")
@click.option("--strict-reconfig-check", type=click.BOOL, default=True, show_default=True,
              help="Refuse member changes that would leave too few started or reachable members.")
@click.option("--listen-client-http-urls", default=None,
              help="URLs serving etcd's JSON gateway (/v3/kv/range, ...) and /health, /version, /metrics "
                   "(https with --cert-file).")
@click.option("--peer-secret-file", default=None, type=click.File("r"),
              help="Shared secret that encrypts and authenticates peer traffic.")
@click.option("--peer-cert-file", default=None, help="TLS certificate for peers (https peer URLs).")
@click.option("--peer-key-file", default=None, help="TLS key for peers.")
@click.option("--peer-trusted-ca-file", default=None, help="CA that signs peers' certificates.")
@click.option("--peer-client-cert-auth", is_flag=True, help="Require a certificate from dialing peers.")
@click.option("--peer-cert-allowed-cn", default=None, help="Accept only peer certificates with this CN.")
@click.option("--peer-auto-tls", is_flag=True,
              help="Encrypt peer traffic with a generated self-signed certificate (not authenticated).")
@click.option("--insecure-peer", is_flag=True,
              help="Allow a peer port beyond loopback without a peer secret or peer TLS.")
def serve(**flags) -> None:
    """Run a member, serving etcd's v3 gRPC API.

    Takes etcd's flag names. Example, a 3-member cluster on one machine:

        raftkv serve --name a --listen-client-urls http://127.0.0.1:2379 \\
            --listen-peer-urls http://127.0.0.1:2380 \\
            --initial-cluster a=http://127.0.0.1:2380,b=http://127.0.0.1:2382,c=http://127.0.0.1:2384
    """
    from raftkv.server.peer_tls import PeerTLSFlags
    from raftkv.server.serve import ConfigError, MemberFailed, ServeConfig, run

    secret = flags.pop("peer_secret_file")
    config = ServeConfig(
        name=flags["name"],
        data_dir=flags["data_dir"],
        listen_client_urls=_urls(flags["listen_client_urls"]),
        advertise_client_urls=_urls(flags["advertise_client_urls"]),
        listen_peer_urls=_urls(flags["listen_peer_urls"]),
        initial_advertise_peer_urls=_urls(flags["initial_advertise_peer_urls"]),
        initial_cluster=flags["initial_cluster"],
        initial_cluster_state=flags["initial_cluster_state"],
        initial_cluster_token=flags["initial_cluster_token"],
        max_request_bytes=flags["max_request_bytes"],
        quota_backend_bytes=flags["quota_backend_bytes"],
        heartbeat_interval_ms=flags["heartbeat_interval"],
        election_timeout_ms=flags["election_timeout"],
        snapshot_count=flags["snapshot_count"],
        cert_file=flags["cert_file"],
        key_file=flags["key_file"],
        trusted_ca_file=flags["trusted_ca_file"],
        client_cert_auth=flags["client_cert_auth"],
        peer_secret=secret.read().strip() if secret else None,
        peer_tls=PeerTLSFlags(
            cert_file=flags["peer_cert_file"], key_file=flags["peer_key_file"],
            trusted_ca_file=flags["peer_trusted_ca_file"], client_cert_auth=flags["peer_client_cert_auth"],
            allowed_cn=flags["peer_cert_allowed_cn"], auto_tls=flags["peer_auto_tls"]),
        insecure_peer=flags["insecure_peer"],
        listen_metrics_urls=_urls(flags["listen_metrics_urls"]) or [],
        listen_client_http_urls=_urls(flags["listen_client_http_urls"]) or [],
        auth_token=flags["auth_token"],
        auth_token_ttl=flags["auth_token_ttl"],
        strict_reconfig_check=flags["strict_reconfig_check"],
        bcrypt_cost=flags["bcrypt_cost"],
    )
    try:
        run(config)
    except (ConfigError, MemberFailed, OSError) as e:
        raise click.ClickException(str(e)) from None


@cli.command(global_flags=False)
def shell() -> None:
    """Open an embedded store and a Python console bound to it as `kv`.

    Example: raftkv shell
    """
    with raftkv.open() as kv:
        code.interact(banner=BANNER.format(version=raftkv.__version__),
                      local={"kv": kv, "raftkv": raftkv}, exitmsg="")


def _register() -> None:
    from raftkv.cli import (
        apiserver, auth, cluster, completion, concurrency, kv, lease, maintenance, member, objects, snapshot, watch,
    )

    for module in (kv, watch, lease, member, maintenance, auth, snapshot, concurrency, cluster, objects,
                   apiserver, completion):
        module.register(cli)


_register()


def main() -> None:
    """The ``raftkv`` program: run the command, then leave without the
    interpreter's shutdown.

    grpc's threads are daemons. One that holds a call's lock when the
    interpreter finalizes is frozen holding it, and the call's finalizer then
    waits for that lock for ever: `raftkv watch` hung after printing its
    error, about once in 200 runs. Everything the command wrote is flushed
    first; the command itself has closed its client and, for ``serve``, its
    member."""
    try:
        cli.main(prog_name="raftkv")
        status = 0
    except SystemExit as e:
        status = _exit_status(e.code)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(status)


def _exit_status(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    click.echo(code, err=True)  # what SystemExit("message") prints
    return 1
