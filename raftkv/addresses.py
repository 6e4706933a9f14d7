"""Network addresses: the host:port a URL names, and free loopback ports."""

from __future__ import annotations

import random
import socket
from urllib.parse import urlparse

_EPHEMERAL_RANGE = "/proc/sys/net/ipv4/ip_local_port_range"


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
    """``count`` distinct loopback ports free at the time of the call.

    They come from below the kernel's ephemeral range. A port from inside it
    (what binding port 0 gives) can be taken by any outgoing connection on the
    machine before the process it was chosen for binds it: seen as "Address
    already in use" when a cluster of members started beside other clusters."""
    low = _ephemeral_low()
    first, last = max(1024, low // 2), low - 1
    if last - first < 16 * count:
        return _kernel_chosen_ports(count)  # an unusual range: nothing to choose from below it
    choose = random.Random()
    ports: list[int] = []
    while len(ports) < count:
        port = choose.randint(first, last)
        if port in ports:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue  # in use
        ports.append(port)
    return ports


def _ephemeral_low() -> int:
    try:
        with open(_EPHEMERAL_RANGE) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _kernel_chosen_ports(count: int) -> list[int]:
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports
