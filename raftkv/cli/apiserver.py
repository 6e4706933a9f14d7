"""``raftkv apiserver``: the Kubernetes API over raftkv's object layer."""

from __future__ import annotations

import logging
import ssl

import click

from raftkv.errors import Unavailable

log = logging.getLogger(__name__)


def register(cli: click.Group) -> None:
    cli.add_command(apiserver)


@click.command("apiserver")
@click.option("--etcd-servers", default="http://127.0.0.1:2379", show_default=True,
              help="The store's client URLs (raftkv's or etcd's), comma-separated.")
@click.option("--etcd-prefix", default="/registry", show_default=True,
              help="The prefix of every key the objects are kept under.")
@click.option("--embedded", "embedded_dir", default=None, metavar="DIR",
              help="Keep the store in this process, durable in DIR, instead of --etcd-servers.")
@click.option("--bind-address", default="127.0.0.1", show_default=True)
@click.option("--secure-port", type=int, default=6443, show_default=True)
@click.option("--tls-cert-file", default=None, help="Serve HTTPS with this certificate (plain HTTP without).")
@click.option("--tls-private-key-file", default=None)
@click.option("--service-cluster-ip-range", default="10.0.0.0/24", show_default=True,
              help="Where Services' cluster IPs come from (the first is the kubernetes Service's).")
@click.option("--service-node-port-range", default="30000-32767", show_default=True,
              help="Where NodePort and LoadBalancer Services' node ports come from.")
def apiserver(etcd_servers: str, etcd_prefix: str, embedded_dir: str | None, bind_address: str, secure_port: int,
              tls_cert_file: str | None, tls_private_key_file: str | None, service_cluster_ip_range: str,
              service_node_port_range: str) -> None:
    """Serve the Kubernetes API (kubectl, client libraries) over raftkv's objects.

    \b
    Example:
        raftkv apiserver --etcd-servers http://127.0.0.1:2379 --secure-port 6443
        kubectl --server http://127.0.0.1:6443 get namespaces
    """
    from aiohttp import web

    import raftkv
    from raftkv.apiserver.app import ApiServer
    from raftkv.apiserver.bootstrap import ensure_kubernetes_service
    from raftkv.client.remote import Client
    from raftkv.objects import ObjectStore
    from raftkv.objects.keys import KeySpace
    from raftkv.objects.services import ServiceRanges

    if bool(tls_cert_file) != bool(tls_private_key_file):
        raise click.UsageError("--tls-cert-file and --tls-private-key-file go together")
    try:
        KeySpace(etcd_prefix)
    except ValueError as e:
        raise click.UsageError(f"--etcd-prefix: {e}") from None
    try:
        ranges = ServiceRanges.parse(service_cluster_ip_range, service_node_port_range)
    except ValueError as e:
        raise click.UsageError(f"--service-cluster-ip-range or --service-node-port-range: {e}") from None
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
        try:
            store = ObjectStore(kv, service_ranges=ranges, key_prefix=etcd_prefix)
            ensure_kubernetes_service(store, "127.0.0.1" if bind_address in ("0.0.0.0", "::") else bind_address,
                                      secure_port)
        except Unavailable:
            raise click.ClickException(f"no member of the store reachable at {etcd_servers} "
                                       f"(--etcd-servers)") from None
        web.run_app(ApiServer(store).application(), host=bind_address, port=secure_port,
                    ssl_context=tls, print=None, handler_cancellation=True, access_log=None)
    finally:
        kv.close()
