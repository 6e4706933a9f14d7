"""``port-sharing``: what serving HTTP/1.1 and gRPC on one client port would cost.

    python -m bench port-sharing --nodes 3 --clients 64 --seconds 10

etcd 3.4 answers its JSON gateway, /health and /metrics on the gRPC client
port (cmux reads a connection's first bytes and hands it to one of two
servers in the same process). Python's gRPC server listens on its own port
and takes no connection from elsewhere, so raftkv could share a port only by
putting a front in the way: accept, read the first bytes, then relay every
byte of an HTTP/2 connection to the gRPC port (an HTTP/1.1 one would go to the
HTTP port; this front closes it, as only the gRPC side is measured). This
measures that front against the direct path, on one raftkv cluster: puts
and linearizable gets with ``--clients`` coroutines spread over every
member (the throughput benchmark's client), direct, through the front,
direct, through the front. Each member's front runs in a process of its own,
so it does not compete with the member for its GIL: the cost measured is a
lower bound of what a front inside the member would cost.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import os
import socket
from dataclasses import asdict

import click

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


async def _relay(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _front(listen: socket.socket, grpc_target: tuple[str, int]) -> None:
    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = await reader.readexactly(len(HTTP2_PREFACE))
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()
            return
        if first != HTTP2_PREFACE:
            writer.close()
            return
        up_reader, up_writer = await asyncio.open_connection(*grpc_target)
        for w in (writer, up_writer):
            w.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        up_writer.write(first)
        await asyncio.gather(_relay(reader, up_writer), _relay(up_reader, writer))

    server = await asyncio.start_server(accept, sock=listen)
    async with server:
        await server.serve_forever()


def _run_front(listen: socket.socket, grpc_target: tuple[str, int]) -> None:
    asyncio.run(_front(listen, grpc_target))


def _host_port(endpoint: str) -> tuple[str, int]:
    host, _, port = endpoint.rpartition(":")
    return host, int(port)


def measure(nodes: int, clients: int, seconds: float, warmup: float, rounds: int) -> dict:
    from bench.harness import started_cluster
    from bench.throughput import _drive

    fronts: list[multiprocessing.Process] = []
    try:
        with started_cluster("raftkv", nodes, "port-sharing") as cluster:
            front_endpoints = []
            spawn = multiprocessing.get_context("spawn")
            for endpoint in cluster.endpoints:
                listen = socket.create_server(("127.0.0.1", 0))
                front_endpoints.append(f"127.0.0.1:{listen.getsockname()[1]}")
                process = spawn.Process(target=_run_front, args=(listen, _host_port(endpoint)), daemon=True)
                process.start()
                listen.close()
                fronts.append(process)
            phases = []
            for n in range(rounds):
                for path, endpoints in (("direct", cluster.endpoints), ("front", front_endpoints)):
                    for r in asyncio.run(_drive(endpoints, path, [clients], seconds, warmup if n == 0 else 1.0,
                                                1000, 256, 10.0)):
                        phases.append({"round": n, **asdict(r)})
                        click.echo(json.dumps(phases[-1]))
    finally:
        for process in fronts:
            process.kill()
            process.join(5)

    def rate(path: str, op: str) -> float:
        chosen = [p for p in phases if p["system"] == path and p["op"] == op]
        return sum(p["ops"] for p in chosen) / sum(p["seconds"] for p in chosen)

    summary = {}
    for op in ("put", "get"):
        direct, front = rate("direct", op), rate("front", op)
        summary[op] = {"direct_ops_per_s": round(direct, 1), "front_ops_per_s": round(front, 1),
                       "ratio": round(front / direct, 3)}
    return {"benchmark": "port-sharing", "nodes": nodes, "clients": clients, "phases": phases, "summary": summary}


@click.command("port-sharing")
@click.option("--nodes", default=3, show_default=True)
@click.option("--clients", default=64, show_default=True)
@click.option("--seconds", default=10.0, show_default=True, help="Measured seconds of each phase.")
@click.option("--warmup", default=3.0, show_default=True)
@click.option("--rounds", default=2, show_default=True, help="Direct and fronted phases, alternated.")
@click.option("--out", default=None, help="Folder for port-sharing-<nodes>n.json.")
def port_sharing(nodes: int, clients: int, seconds: float, warmup: float, rounds: int, out: str | None) -> None:
    """gRPC throughput direct and through a first-bytes front, as a shared port would need."""
    result = measure(nodes, clients, seconds, warmup, rounds)
    lines = ["| op | direct ops/s | through the front ops/s | ratio |", "|---|---:|---:|---:|"]
    for op, s in result["summary"].items():
        lines.append(f"| {op} | {s['direct_ops_per_s']} | {s['front_ops_per_s']} | {s['ratio']:.2f} |")
    click.echo("\n".join(lines), err=True)
    if out:
        os.makedirs(out, exist_ok=True)
        with open(os.path.join(out, f"port-sharing-{nodes}n.json"), "w") as f:
            json.dump(result, f, indent=1)
