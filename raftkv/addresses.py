"""Network addresses: the host:port a URL names, and free loopback ports."""

from __future__ import annotations

import socket
from urllib.parse import urlparse


class BadURL(ValueError):
    """A URL without a host or a port."""


def host_port(url: str) -> str:
    """``host:port`` of a URL (the scheme is optional)."""
    parsed = urlparse(url if "://" in url else "http://" + url)
    try:
        port = parsed.port
    except ValueError:
        port = None
    if not parsed.hostname or not port:
        raise BadURL(f"{url!r} is not a URL with a host and a port")
    return f"{parsed.hostname}:{port}"


def free_ports(count: int) -> list[int]:
    """``count`` distinct loopback ports free at the time of the call."""
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports
