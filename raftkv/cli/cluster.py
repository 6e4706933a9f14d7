"""``raftkv cluster up|status``: a local cluster for development, and a summary of any cluster."""

from __future__ import annotations

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import click
import yaml

from raftkv.cli import output
from raftkv.cli.context import CLIError, group, settings, write_out
from raftkv.cli.member import _health, _status, member_list
from raftkv.cli.watch import interruptible

RECORD = "cluster.json"


def register(cli: click.Group) -> None:
    cli.add_command(cluster)


@group("cluster")
def cluster() -> None:
    """A local cluster for development, and the state of a cluster.

    \b
    Example:
        raftkv cluster up --size 3
        raftkv cluster status
    """


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _load_record(data_dir: str) -> dict | None:
    try:
        with open(os.path.join(data_dir, RECORD)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _peer_secret(data_dir: str) -> str:
    """The members' shared peer secret: made once, readable by this user only."""
    path = os.path.join(data_dir, "peer-secret")
    if not os.path.exists(path):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32) + "\n")
    return path


def _tail(path: str, lines: int = 5) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return ""


@cluster.command("up", global_flags=False)
@click.option("--size", type=click.IntRange(min=1, max=9), default=3, show_default=True,
              help="Number of members.")
@click.option("--base-port", type=click.IntRange(min=1, max=65000), default=None,
              help="Member i listens for clients on BASE+2i and for peers on BASE+2i+1  [default: 2379].")
@click.option("--data-dir", default="raftkv-cluster", show_default=True,
              help="Where the members keep their data and logs; a second `up` resumes them.")
@click.option("--startup-timeout", type=float, default=30.0, show_default=True, help="Seconds.")
@click.option("--kube", is_flag=True, help="Also run `raftkv apiserver` over the cluster, and write a kubeconfig.")
@click.option("--kube-port", type=click.IntRange(min=1, max=65535), default=6443, show_default=True,
              help="With --kube: the apiserver's port.")
def up(size: int, base_port: int | None, data_dir: str, startup_timeout: float, kube: bool, kube_port: int) -> None:
    """Start a local cluster of SIZE `raftkv serve` processes and stop them all on Ctrl-C.

    Prints each member's client and peer URLs and the commands to reach it;
    reports members that exit while it runs. Running it again on the same
    --data-dir resumes the same cluster with its data. With --kube, the
    Kubernetes API is served over the cluster too, and --data-dir/kubeconfig
    points kubectl at it.

    \b
    Example:
        raftkv cluster up --size 3
        raftkv cluster up --size 3 --base-port 32379 --data-dir /tmp/dev-cluster
        raftkv cluster up --size 3 --kube    # then: KUBECONFIG=raftkv-cluster/kubeconfig kubectl get ns
    """
    from raftkv.cluster.local import LocalCluster

    data_dir = os.path.abspath(data_dir)
    record = _load_record(data_dir)
    if record is not None:
        if record.get("size") != size or (base_port is not None and record.get("base_port") != base_port):
            raise CLIError(f"{data_dir} holds a cluster of {record.get('size')} members on base port "
                           f"{record.get('base_port')} — run with those, or give another --data-dir")
        base_port = record["base_port"]
    if base_port is None:
        base_port = 2379
    busy = [p for p in [*range(base_port, base_port + 2 * size), *([kube_port] if kube else [])]
            if not _port_free(p)]
    if busy:
        raise CLIError(f"port {busy[0]} is in use — is a cluster already running? Stop it, or choose "
                       "other ports with --base-port")
    os.makedirs(data_dir, exist_ok=True)
    token = (record or {}).get("token") or secrets.token_hex(8)
    with open(os.path.join(data_dir, RECORD), "w") as f:
        json.dump({"size": size, "base_port": base_port, "token": token}, f)
    local = LocalCluster(size, data_dir, base_port=base_port, extra_args=[
        "--peer-secret-file", _peer_secret(data_dir), "--initial-cluster-token", token])
    click.echo(f"starting {size} member{'s' if size > 1 else ''} in {data_dir} ...", err=True)
    stopped_by_user = False
    apiserver: KubeApiServer | None = None
    try:
        with interruptible():
            try:
                local.start(timeout=startup_timeout)
            except TimeoutError as e:
                broken = [m for m in local.members if not m.running] or local.members
                tail = _tail(broken[0].log_path)
                raise CLIError(f"the cluster did not come up: {e}"
                               + (f"\n{broken[0].log_path} ends with:\n{tail}" if tail else "")) from None
            apiserver = _start_apiserver(local, data_dir, kube_port, startup_timeout) if kube else None
            _print_banner(local, apiserver)
            _supervise(local, apiserver)
        stopped_by_user = True
    finally:
        if apiserver is not None:
            apiserver.stop()
        if any(m.running for m in local.members):
            click.echo(f"stopping {sum(m.running for m in local.members)} member(s) ...", err=True)
        local.stop()
        if stopped_by_user:
            click.echo("stopped", err=True)


class KubeApiServer:
    """`raftkv apiserver` over the cluster, as a child process."""

    def __init__(self, endpoints: list[str], data_dir: str, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = os.path.join(data_dir, "apiserver.log")
        self.kubeconfig = os.path.join(data_dir, "kubeconfig")
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - open while the child runs
        self.process = subprocess.Popen(
            [sys.executable, "-m", "raftkv", "apiserver", "--etcd-servers",
             ",".join(f"http://{e}" for e in endpoints), "--bind-address", "127.0.0.1", "--secure-port", str(port)],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(self.url + "/readyz", timeout=1) as answer:
                    if answer.status == 200:
                        return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise CLIError(f"the apiserver did not come up; {os.path.relpath(self.log_path)} ends with:\n"
                               + _tail(self.log_path))
            time.sleep(0.1)

    def write_kubeconfig(self) -> None:
        config = {
            "apiVersion": "v1", "kind": "Config", "preferences": {},
            "clusters": [{"name": "raftkv", "cluster": {"server": self.url}}],
            "users": [{"name": "raftkv", "user": {}}],
            "contexts": [{"name": "raftkv", "context": {"cluster": "raftkv", "user": "raftkv",
                                                        "namespace": "default"}}],
            "current-context": "raftkv",
        }
        with open(self.kubeconfig, "w") as f:
            yaml.safe_dump(config, f, sort_keys=False)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._log.close()


def _start_apiserver(local, data_dir: str, port: int, timeout: float) -> KubeApiServer:
    apiserver = KubeApiServer(local.endpoints, data_dir, port)
    try:
        apiserver.wait_ready(timeout)
        apiserver.write_kubeconfig()
    except BaseException:
        apiserver.stop()
        raise
    return apiserver


def _print_banner(local, apiserver: KubeApiServer | None = None) -> None:
    endpoints = ",".join(local.endpoints)
    rows = [[m.name, f"http://{m.endpoint}", m.peer_url, str(m.process.pid),
             os.path.relpath(m.log_path)] for m in local.members]
    n = len(local.members)
    click.echo(f"raftkv cluster of {n} member{'' if n == 1 else 's'} is up\n")
    click.echo(output.plain_table(["NAME", "CLIENT URL", "PEER URL", "PID", "LOG"], rows))
    click.echo("\nReach it with:")
    click.echo(f"  export RAFTKV_ENDPOINTS={endpoints}")
    click.echo("  raftkv cluster status")
    click.echo("  raftkv put greeting hello && raftkv get greeting")
    click.echo(f"  etcdctl --endpoints {endpoints} member list -w table")
    if apiserver is not None:
        click.echo(f"\nThe Kubernetes API is on {apiserver.url} (log: {os.path.relpath(apiserver.log_path)}):")
        click.echo(f"  export KUBECONFIG={apiserver.kubeconfig}")
        click.echo("  kubectl get namespaces")
    click.echo("\nCtrl-C stops every member.", err=False)


def _supervise(local, apiserver: KubeApiServer | None = None) -> None:
    """Until Ctrl-C: report members (and the apiserver) that exit."""
    reported: set[str] = set()
    while True:
        if apiserver is not None and "apiserver" not in reported and apiserver.process.poll() is not None:
            reported.add("apiserver")
            click.echo(f"the apiserver exited with code {apiserver.process.returncode} — its log is "
                       f"{os.path.relpath(apiserver.log_path)}", err=True)
        for m in local.members:
            if m.name not in reported and m.process is not None and m.process.poll() is not None:
                reported.add(m.name)
                click.echo(f"member {m.name} (pid {m.process.pid}) exited with code {m.process.returncode}"
                           f" — the others carry on; its log is {os.path.relpath(m.log_path)}", err=True)
            elif m.name in reported and m.running:
                reported.discard(m.name)
        if len(reported - {"apiserver"}) == len(local.members):
            raise CLIError("every member has exited — see the logs above")
        time.sleep(0.2)



@cluster.command("status")
def status() -> None:
    """Members, leader, revision and health of the cluster at --endpoints.

    \b
    Examples:
        raftkv cluster status
        raftkv cluster status -w json
    """
    fmt = write_out()
    members = sorted(member_list().members, key=lambda m: (m.name or "~", m.ID))
    urls = [m.clientURLs[0] if m.clientURLs else "" for m in members]
    s = settings()
    # while a new leader is elected (a member just went away) the members
    # disagree or know none: look again for a moment before calling it so
    deadline = time.monotonic() + min(s.command_timeout, 3.0)
    while True:
        statuses, healths = _probe(urls, s)
        leader_ids = {st.status.leader for st in statuses if st is not None and st.status is not None}
        leader_id = next(iter(leader_ids)) if len(leader_ids) == 1 else 0
        if leader_id or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    revision = max((st.status.header.revision for st in statuses if st is not None and st.status is not None),
                   default=0)
    healthy = sum(1 for h in healths if h is not None and not h.error)
    voters = sum(1 for m in members if not m.isLearner)
    if healthy == len(members):
        verdict = "healthy"
    elif leader_id and healthy > voters // 2:
        verdict = f"degraded ({healthy}/{len(members)} members healthy)"
    elif leader_id:
        verdict = f"unhealthy ({healthy}/{len(members)} members healthy: no quorum)"
    else:
        verdict = "unhealthy (no leader: a majority of members is unreachable)"
    leader_name = next((m.name or f"{m.ID:x}" for m in members if m.ID == leader_id), "none")
    rows = []
    for m, st, h in zip(members, statuses, healths):
        s = st.status if st is not None else None
        rows.append({
            "name": m.name or "(unstarted)",
            "id": f"{m.ID:x}",
            "client_url": ",".join(m.clientURLs),
            "leader": m.ID == leader_id,
            "learner": m.isLearner,
            "raft_term": s.raftTerm if s is not None else None,
            "raft_index": s.raftIndex if s is not None else None,
            "revision": s.header.revision if s is not None else None,
            "health": "healthy" if h is not None and not h.error else
                      (h.error if h is not None else "no client URL"),
        })
    if fmt == output.JSON:
        output.echo_json({"cluster_id": f"{_cluster_id(statuses):x}", "leader": leader_name,
                          "revision": revision, "health": verdict, "members": rows})
    else:
        header = ["NAME", "ID", "CLIENT URL", "LEADER", "RAFT TERM", "RAFT INDEX", "REVISION", "HEALTH"]
        table_rows = [[r["name"], r["id"], r["client_url"], "*" if r["leader"] else
                       ("learner" if r["learner"] else ""),
                       _cell(r["raft_term"]), _cell(r["raft_index"]), _cell(r["revision"]),
                       _health_cell(r["health"])] for r in rows]
        colour = "green" if verdict == "healthy" else ("yellow" if verdict.startswith("degraded") else "red")
        click.echo(f"cluster: {len(members)} member{'' if len(members) == 1 else 's'}, leader {leader_name}, "
                   f"revision {revision}, "
                   + click.style(verdict, fg=colour))
        if fmt == output.TABLE:
            click.echo(output.boxed_table(header, table_rows))
        else:
            click.echo(output.plain_table(header, table_rows))
    if not leader_id:
        raise click.exceptions.Exit(1)


def _probe(urls: list[str], s) -> tuple[list, list]:
    """(status, health) of every member at once; None where a member has no client URL."""
    with ThreadPoolExecutor(max_workers=max(1, 2 * len(urls))) as pool:
        status_futures = [pool.submit(_status, u, s) if u else None for u in urls]
        health_futures = [pool.submit(_health, u, s) if u else None for u in urls]
        return ([f.result() if f is not None else None for f in status_futures],
                [f.result() if f is not None else None for f in health_futures])


def _cluster_id(statuses) -> int:
    for s in statuses:
        if s is not None and s.status is not None:
            return s.status.header.cluster_id
    return 0


def _cell(value) -> str:
    return "-" if value is None else str(value)


def _health_cell(text: str) -> str:
    return click.style(text, fg="green") if text == "healthy" else click.style(text, fg="red")
