"""What a Service is given on creation: a cluster IP from the service range
and, for NodePort and LoadBalancer Services, a node port for each port.

Each IP and node port in use is a claim: a key
``<prefix>-index/allocations/<clusterips|nodeports>/<value>`` whose value
names the Service's key, written in the Service's own txn and guarded there
(absent before), so two Services never hold the same one, and released in
the txn that deletes the Service. Claims are named here without the prefix.
"""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from raftkv.objects.errors import FieldError, InternalError

CLUSTER_IPS = "clusterips/"
NODE_PORTS = "nodeports/"
NODE_PORT_TYPES = ("NodePort", "LoadBalancer")


@dataclass(frozen=True)
class ServiceRanges:
    """kube-apiserver's --service-cluster-ip-range and --service-node-port-range."""

    cluster_ips: ipaddress.IPv4Network | ipaddress.IPv6Network = field(
        default_factory=lambda: ipaddress.ip_network("10.0.0.0/24"))
    node_ports: range = range(30000, 32768)

    @classmethod
    def parse(cls, cluster_ip_range: str, node_port_range: str) -> ServiceRanges:
        """From the flags' text: "10.0.0.0/24" and "30000-32767"; ValueError when malformed."""
        network = ipaddress.ip_network(cluster_ip_range)
        low, sep, high = node_port_range.partition("-")
        first, last = int(low), int(high or low) if sep else int(low)
        if not 0 < first <= last < 65536 or network.num_addresses < 4:
            raise ValueError(f"bad service ranges {cluster_ip_range!r} {node_port_range!r}")
        return cls(network, range(first, last + 1))

    @property
    def first_ip(self) -> str:
        """The IP of the ``kubernetes`` Service: the range's first host."""
        return str(self.cluster_ips.network_address + 1)


def _ip_claim(ip: str) -> bytes:
    return (CLUSTER_IPS + ip).encode()


def _port_claim(port: int) -> bytes:
    return f"{NODE_PORTS}{port}".encode()


def is_service(kind: Any) -> bool:
    return kind.builtin and kind.group == "" and kind.kind == "Service"


def _spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, dict) else {}


def claims(obj: dict[str, Any] | None) -> set[bytes]:
    """The claims an object holds (only Services hold any)."""
    if obj is None or obj.get("kind") != "Service" or obj.get("apiVersion") != "v1":
        return set()
    spec = _spec(obj)
    held = set()
    ip = spec.get("clusterIP")
    if isinstance(ip, str) and ip and ip != "None":
        held.add(_ip_claim(ip))
    for port in spec.get("ports") or []:
        if isinstance(port, dict) and isinstance(port.get("nodePort"), int) and port["nodePort"]:
            held.add(_port_claim(port["nodePort"]))
    return held


def assign(obj: dict[str, Any], ranges: ServiceRanges, taken: Iterable[bytes],
           rng: random.Random | None = None) -> None:
    """Fill in a cluster IP and node ports the Service asks the server to
    choose, none of them in ``taken`` (allocation keys)."""
    rng = rng or random.SystemRandom()
    taken = set(taken)
    spec = obj.setdefault("spec", {})
    service_type = spec.setdefault("type", "ClusterIP")
    if service_type != "ExternalName" and not spec.get("clusterIP"):
        hosts = ranges.cluster_ips.num_addresses - 2
        for _ in range(64):
            ip = str(ranges.cluster_ips.network_address + 2 + rng.randrange(hosts - 1))
            if _ip_claim(ip) not in taken:
                spec["clusterIP"] = ip
                break
        else:
            free = (str(a) for a in ranges.cluster_ips.hosts()
                    if _ip_claim(str(a)) not in taken and str(a) != ranges.first_ip)
            spec["clusterIP"] = next(free, "")
            if not spec["clusterIP"]:
                raise InternalError("failed to allocate a serviceIP: range is full")
    if spec.get("clusterIP") and spec["clusterIP"] != "None":
        spec["clusterIPs"] = [spec["clusterIP"]]
    if service_type in NODE_PORT_TYPES:
        for port in spec.get("ports") or []:
            if isinstance(port, dict) and not port.get("nodePort"):
                free_ports = [p for p in ranges.node_ports if _port_claim(p) not in taken]
                if not free_ports:
                    raise InternalError("failed to allocate a nodePort: range is full")
                port["nodePort"] = rng.choice(free_ports)
                taken.add(_port_claim(port["nodePort"]))


def carry_over(obj: dict[str, Any], old: dict[str, Any]) -> None:
    """An update that leaves out the cluster IP or a port's node port keeps
    what the Service was given (as kube-apiserver patches allocated values in)."""
    spec, old_spec = obj.setdefault("spec", {}), _spec(old)
    if not spec.get("clusterIP") and old_spec.get("clusterIP"):
        spec["clusterIP"] = old_spec["clusterIP"]
    if spec.get("type", "ClusterIP") not in NODE_PORT_TYPES:
        return
    given = {(p.get("port"), p.get("protocol", "TCP")): p.get("nodePort")
             for p in old_spec.get("ports") or [] if isinstance(p, dict) and p.get("nodePort")}
    for port in spec.get("ports") or []:
        if isinstance(port, dict) and not port.get("nodePort"):
            kept = given.get((port.get("port"), port.get("protocol", "TCP")))
            if kept:
                port["nodePort"] = kept


def check(obj: dict[str, Any], ranges: ServiceRanges, old: dict[str, Any] | None = None) -> list[FieldError]:
    """What kube-apiserver refuses in a Service's allocations."""
    spec = _spec(obj)
    errs = []
    ip = spec.get("clusterIP")
    if old is not None and _spec(old).get("clusterIP") and ip != _spec(old).get("clusterIP"):
        errs.append(FieldError("spec.clusterIPs[0]", "Invalid value", [ip] if ip else [],
                               "may not change once set"))
    elif isinstance(ip, str) and ip and ip != "None":
        try:
            inside = ipaddress.ip_address(ip) in ranges.cluster_ips
        except ValueError:
            errs.append(FieldError("spec.clusterIPs[0]", "Invalid value", ip,
                                   "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"))
        else:
            if not inside:
                errs.append(FieldError("spec.clusterIPs", "Invalid value", [ip],
                                       f"failed to allocate IP {ip}: the provided IP ({ip}) is not in the "
                                       f"valid range. The range of valid IPs is {ranges.cluster_ips}"))
    for i, port in enumerate(spec.get("ports") or []):
        node_port = port.get("nodePort") if isinstance(port, dict) else None
        if not node_port:
            continue
        if spec.get("type", "ClusterIP") not in NODE_PORT_TYPES:
            errs.append(FieldError(f"spec.ports[{i}].nodePort", "Forbidden",
                                   detail="may not be used when `type` is 'ClusterIP'"))
        elif isinstance(node_port, int) and node_port not in ranges.node_ports:
            errs.append(FieldError(f"spec.ports[{i}].nodePort", "Invalid value", node_port,
                                   f"provided port is not in the valid range. The range of valid ports is "
                                   f"{ranges.node_ports.start}-{ranges.node_ports.stop - 1}"))
    return errs


def already_allocated(obj: dict[str, Any], taken: Iterable[bytes]) -> list[FieldError]:
    """The errors for claims of ``obj`` someone else holds."""
    taken = set(taken)
    spec = _spec(obj)
    errs = []
    ip = spec.get("clusterIP")
    if ip and _ip_claim(ip) in taken:
        errs.append(FieldError("spec.clusterIPs", "Invalid value", [ip],
                               f"failed to allocate IP {ip}: provided IP is already allocated"))
    for i, port in enumerate(spec.get("ports") or []):
        if isinstance(port, dict) and port.get("nodePort") and _port_claim(port["nodePort"]) in taken:
            errs.append(FieldError(f"spec.ports[{i}].nodePort", "Invalid value", port["nodePort"],
                                   "provided port is already allocated"))
    return errs
