"""raftkv.addresses.free_ports: ports no outgoing connection can take meanwhile."""

from __future__ import annotations

import socket

from raftkv import addresses


def test_free_ports_are_distinct_bindable_and_below_the_ephemeral_range():
    low = addresses._ephemeral_low()
    ports = addresses.free_ports(40)
    assert len(set(ports)) == 40
    assert all(1024 <= port < low for port in ports)
    for port in ports:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))


def test_a_port_in_use_is_not_chosen(monkeypatch):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        taken.listen()
        free = addresses._kernel_chosen_ports(1)[0]
        choices = iter([port, port, free])
        monkeypatch.setattr(addresses, "_ephemeral_low", lambda: 65000)
        monkeypatch.setattr(addresses.random.Random, "randint", lambda self, a, b: next(choices))
        assert addresses.free_ports(1) == [free]
