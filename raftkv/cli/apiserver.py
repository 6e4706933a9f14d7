"""``raftkv apiserver``: the Kubernetes API over raftkv's object layer."""

from __future__ import annotations

import logging
import ssl

import click

log = logging.getLogger(__name__)


def register(cli: click.Group) -> None:
    cli.add_command(apiserver)


@click.command("apiserver")
@click.option("--etcd-servers", default="http://127.0.0.1:2379", show_default=True,
              help="The store's client URLs (raftkv's or etcd's), comma-separated.")
@click.option("--embedded", "embedded_dir", default=None, metavar="DIR",
              help="Keep the store in this process, durable in DIR, instead of --etcd-servers.")
@click.option("--bind-address", default="127.0.0.1", show_default=True)
@click.option("--secure-port", type=int, default=6443, show_default=True)
@click.option("--tls-cert-file", default=None, help="Serve HTTPS with this certificate (plain HTTP without).")
@click.option("--tls-private-key-file", default=None)
def apiserver(etcd_servers: str, embedded_dir: str | None, bind_address: str, secure_port: int,
              tls_cert_file: str | None, tls_private_key_file: str | None) -> None:
    """Serve the Kubernetes API (kubectl, client libraries) over raftkv's objects.

    \b
    Example:
        raftkv apiserver --etcd-servers http://127.0.0.1:2379 --secure-port 6443
        kubectl --server http://127.0.0.1:6443 get namespaces
    """
    from aiohttp import web

    import raftkv
    from raftkv.apiserver.app import ApiServer
    from raftkv.client.remote import Client
    from raftkv.objects import ObjectStore

    if bool(tls_cert_file) != bool(tls_private_key_file):
        raise click.UsageError("--tls-cert-file and --tls-private-key-file go together")
    kv = raftkv.open(embedded_dir) if embedded_dir else Client(etcd_servers)
    tls = None
    if tls_cert_file:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(tls_cert_file, tls_private_key_file)
    else:
        log.warning("serving the Kubernetes API over plain HTTP, without TLS: anyone who reaches "
                    "%s:%d can read and change every object", bind_address, secure_port)
    scheme = "https" if tls else "http"
    click.echo(f"serving the Kubernetes API on {scheme}://{bind_address}:{secure_port}", err=True)
    try:
        web.run_app(ApiServer(ObjectStore(kv)).application(), host=bind_address, port=secure_port,
                    ssl_context=tls, print=None, handler_cancellation=True, access_log=None)
    finally:
        kv.close()
