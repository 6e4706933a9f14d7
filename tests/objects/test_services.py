"""A Service's cluster IP and node ports: given by the store, unique, kept
across updates, released on delete."""

from __future__ import annotations

import ipaddress
import threading

import pytest

from raftkv.objects import InternalError, Invalid, ObjectStore
from raftkv.objects.services import ServiceRanges


def service(name: str, type_: str = "ClusterIP", cluster_ip: str | None = None,
            node_port: int | None = None, port: int = 80) -> dict:
    spec: dict = {"type": type_, "selector": {"app": name}, "ports": [{"port": port, "protocol": "TCP"}]}
    if cluster_ip is not None:
        spec["clusterIP"] = cluster_ip
    if node_port is not None:
        spec["ports"][0]["nodePort"] = node_port
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name}, "spec": spec}


@pytest.fixture
def small(kv, clock) -> ObjectStore:
    """Eight addresses (five to give: not the network's, the broadcast's or the first host's), three ports."""
    return ObjectStore(kv, clock=clock, service_ranges=ServiceRanges.parse("10.9.0.0/29", "30000-30002"))


def test_each_service_gets_its_own_cluster_ip_in_the_range(store):
    ips = [store.create(service(f"s{i}"))["spec"]["clusterIP"] for i in range(30)]
    assert len(set(ips)) == 30
    network = ipaddress.ip_network("10.0.0.0/24")
    assert all(ipaddress.ip_address(ip) in network and ip != "10.0.0.1" for ip in ips)
    assert store.get("services", "s0")["spec"]["clusterIPs"] == [ips[0]]


def test_node_ports_are_given_to_node_port_services_only(store):
    plain = store.create(service("plain"))
    assert "nodePort" not in plain["spec"]["ports"][0]
    exposed = store.create(service("exposed", "NodePort"))
    assert 30000 <= exposed["spec"]["ports"][0]["nodePort"] <= 32767
    with pytest.raises(Invalid, match=r"spec.ports\[0\].nodePort: Forbidden: may not be used when `type` is "
                                      r"'ClusterIP'"):
        store.create(service("odd", node_port=30500))


def test_a_taken_ip_or_port_is_refused_and_a_deleted_services_are_free_again(store):
    store.create(service("first", "NodePort", cluster_ip="10.0.0.50", node_port=30080))
    with pytest.raises(Invalid) as ip_taken:
        store.create(service("second", cluster_ip="10.0.0.50"))
    assert str(ip_taken.value) == ('Service "second" is invalid: spec.clusterIPs: Invalid value: ["10.0.0.50"]: '
                                   'failed to allocate IP 10.0.0.50: provided IP is already allocated')
    with pytest.raises(Invalid, match=r"spec.ports\[0\].nodePort: Invalid value: 30080: provided port is "
                                      r"already allocated"):
        store.create(service("third", "NodePort", node_port=30080))
    store.delete("services", "first")
    again = store.create(service("second", "NodePort", cluster_ip="10.0.0.50", node_port=30080))
    assert again["spec"]["clusterIP"] == "10.0.0.50"


def test_out_of_range_values_are_refused(store):
    with pytest.raises(Invalid, match="the provided IP \\(10.1.0.5\\) is not in the valid range"):
        store.create(service("far", cluster_ip="10.1.0.5"))
    with pytest.raises(Invalid, match="provided port is not in the valid range. The range of valid ports is "
                                      "30000-32767"):
        store.create(service("low", "NodePort", node_port=8080))


def test_an_update_keeps_what_was_given_and_may_not_change_the_ip(store):
    created = store.create(service("web", "NodePort"))
    given_ip, given_port = created["spec"]["clusterIP"], created["spec"]["ports"][0]["nodePort"]
    replaced = service("web", "NodePort")  # as a client that never read them sends it
    replaced["metadata"]["labels"] = {"tier": "front"}
    updated = store.update(replaced)
    assert updated["spec"]["clusterIP"] == given_ip
    assert updated["spec"]["ports"][0]["nodePort"] == given_port
    moved = service("web", "NodePort", cluster_ip="10.0.0.9")
    with pytest.raises(Invalid, match=r"spec.clusterIPs\[0\]: Invalid value: \[\"10.0.0.9\"\]: may not change once "
                                      r"set"):
        store.update(moved)


def test_a_changed_node_port_moves_the_claim(store):
    store.create(service("web", "NodePort", node_port=30100))
    store.patch("services", "web", {"spec": {"ports": [{"port": 80, "protocol": "TCP", "nodePort": 30101}]}})
    assert store.create(service("other", "NodePort", node_port=30100))["spec"]["ports"][0]["nodePort"] == 30100
    with pytest.raises(Invalid, match="provided port is already allocated"):
        store.create(service("third", "NodePort", node_port=30101))


def test_a_full_range_refuses_more_services(small):
    ips = {small.create(service(f"s{i}"))["spec"]["clusterIP"] for i in range(5)}
    assert ips == {f"10.9.0.{i}" for i in range(2, 7)}
    with pytest.raises(InternalError, match="failed to allocate a serviceIP: range is full"):
        small.create(service("one-too-many"))


def test_concurrent_creates_never_share_an_ip_or_a_port(small):
    results: list = []

    def create(i: int) -> None:
        try:
            results.append(small.create(service(f"s{i}", "NodePort")))
        except InternalError:  # the three node ports are gone
            results.append(None)

    threads = [threading.Thread(target=create, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    created = [r for r in results if r is not None]
    assert len(created) == 3  # three node ports
    assert len({r["spec"]["clusterIP"] for r in created}) == 3
    assert len({r["spec"]["ports"][0]["nodePort"] for r in created}) == 3
