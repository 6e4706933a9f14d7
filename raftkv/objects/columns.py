"""kubectl's columns for each built-in kind, and its age format: what
``raftkv obj get`` prints and what ``raftkv apiserver`` answers as a Table."""

from __future__ import annotations

import calendar
import time
from typing import Any


def human_age(seconds: float) -> str:
    """kubectl's HumanDuration."""
    s = int(seconds)
    if s < -1:
        return "<invalid>"
    if s < 0:
        return "0s"
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        rest = s % 60
        return f"{minutes}m{rest}s" if rest else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = s // 3600
    if hours < 8:
        rest = minutes % 60
        return f"{hours}h{rest}m" if rest else f"{hours}h"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        rest = hours % 24
        return f"{hours // 24}d{rest}h" if rest else f"{hours // 24}d"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        rest = (hours // 24) % 365
        return f"{hours // 24 // 365}y{rest}d" if rest else f"{hours // 24 // 365}y"
    return f"{hours // 24 // 365}y"


def age(o: dict[str, Any]) -> str:
    stamp = o.get("metadata", {}).get("creationTimestamp")
    if not stamp:
        return "<unknown>"
    try:
        created = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return "<unknown>"
    return human_age(time.time() - created)


def field(o: dict[str, Any], *path: str, default: Any = None) -> Any:
    for p in path:
        if not isinstance(o, dict):
            return default
        o = o.get(p)
        if o is None:
            return default
    return o


def selector_text(selector: Any) -> str:
    if not selector:
        return "<none>"
    if isinstance(selector, dict) and ("matchLabels" in selector or "matchExpressions" in selector):
        parts = [f"{k}={v}" for k, v in (selector.get("matchLabels") or {}).items()]
        for e in selector.get("matchExpressions") or []:
            op, values = e.get("operator"), ",".join(e.get("values") or [])
            parts.append({"In": f"{e.get('key')} in ({values})", "NotIn": f"{e.get('key')} notin ({values})",
                          "Exists": e.get("key"), "DoesNotExist": f"!{e.get('key')}"}.get(op, str(e)))
        return ",".join(parts) or "<none>"
    if isinstance(selector, dict):
        return ",".join(f"{k}={v}" for k, v in selector.items()) or "<none>"
    return str(selector)


def _containers(o: dict[str, Any]) -> list[dict[str, Any]]:
    spec = field(o, "spec", "template", "spec") or field(o, "spec") or {}
    return [c for c in spec.get("containers") or [] if isinstance(c, dict)]


def _ports(o: dict[str, Any]) -> str:
    ports = []
    for p in field(o, "spec", "ports", default=[]) or []:
        text = str(p.get("port", ""))
        if p.get("nodePort"):
            text += f":{p['nodePort']}"
        ports.append(f"{text}/{p.get('protocol', 'TCP')}")
    return ",".join(ports) or "<none>"


def _endpoints(o: dict[str, Any], shown: int = 3) -> str:
    """kubectl's ENDPOINTS: address:port pairs, the first three and a count of the rest."""
    pairs = [f"{a.get('ip', '')}:{p.get('port', '')}" if p else a.get("ip", "")
             for subset in o.get("subsets") or [] if isinstance(subset, dict)
             for p in (subset.get("ports") or [None])
             for a in subset.get("addresses") or []]
    if not pairs:
        return "<none>"
    more = f" + {len(pairs) - shown} more..." if len(pairs) > shown else ""
    return ",".join(pairs[:shown]) + more


def _slice_ports(o: dict[str, Any]) -> str:
    ports = [str(p.get("port")) for p in o.get("ports") or [] if isinstance(p, dict) and p.get("port") is not None]
    return ",".join(ports) or "<unset>"


def _slice_endpoints(o: dict[str, Any], shown: int = 3) -> str:
    addresses = [a for e in o.get("endpoints") or [] if isinstance(e, dict) for a in e.get("addresses") or []]
    if not addresses:
        return "<unset>"
    more = f" + {len(addresses) - shown} more..." if len(addresses) > shown else ""
    return ",".join(addresses[:shown]) + more


def _readiness_gates(o: dict[str, Any]) -> str:
    gates = field(o, "spec", "readinessGates", default=[]) or []
    if not gates:
        return "<none>"
    met = {c.get("type") for c in field(o, "status", "conditions", default=[]) or [] if c.get("status") == "True"}
    return f"{sum(1 for g in gates if g.get('conditionType') in met)}/{len(gates)}"


def _ready_containers(o: dict[str, Any]) -> int:
    return sum(1 for s in field(o, "status", "containerStatuses", default=[]) or [] if s.get("ready"))


def labels_text(o: dict[str, Any]) -> str:
    labels = field(o, "metadata", "labels") or {}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "<none>"


def _workload_ready(o: dict[str, Any]) -> str:
    return f"{field(o, 'status', 'readyReplicas', default=0)}/{field(o, 'spec', 'replicas', default=1)}"


# (header, value) columns per kind; the wide ones come after, before AGE moves last
COLUMNS: dict[str, list[tuple[str, Any]]] = {
    "Deployment": [("READY", _workload_ready),
                   ("UP-TO-DATE", lambda o: field(o, "status", "updatedReplicas", default=0)),
                   ("AVAILABLE", lambda o: field(o, "status", "availableReplicas", default=0))],
    "ReplicaSet": [("DESIRED", lambda o: field(o, "spec", "replicas", default=1)),
                   ("CURRENT", lambda o: field(o, "status", "replicas", default=0)),
                   ("READY", lambda o: field(o, "status", "readyReplicas", default=0))],
    "StatefulSet": [("READY", _workload_ready)],
    "DaemonSet": [("DESIRED", lambda o: field(o, "status", "desiredNumberScheduled", default=0)),
                  ("CURRENT", lambda o: field(o, "status", "currentNumberScheduled", default=0)),
                  ("READY", lambda o: field(o, "status", "numberReady", default=0)),
                  ("UP-TO-DATE", lambda o: field(o, "status", "updatedNumberScheduled", default=0)),
                  ("AVAILABLE", lambda o: field(o, "status", "numberAvailable", default=0)),
                  ("NODE SELECTOR", lambda o: selector_text(field(o, "spec", "template", "spec",
                                                                "nodeSelector")))],
    "Pod": [("READY", lambda o: f"{_ready_containers(o)}/{len(_containers(o))}"),
            ("STATUS", lambda o: "Terminating" if field(o, "metadata", "deletionTimestamp")
                       else field(o, "status", "phase", default="Pending")),
            ("RESTARTS", lambda o: sum(int(s.get("restartCount", 0))
                                       for s in field(o, "status", "containerStatuses", default=[]) or []))],
    "Service": [("TYPE", lambda o: field(o, "spec", "type", default="ClusterIP")),
                ("CLUSTER-IP", lambda o: field(o, "spec", "clusterIP", default="<none>")),
                ("EXTERNAL-IP", lambda o: ",".join(field(o, "spec", "externalIPs", default=[]) or []) or "<none>"),
                ("PORT(S)", _ports)],
    "Endpoints": [("ENDPOINTS", _endpoints)],
    "EndpointSlice": [("ADDRESSTYPE", lambda o: o.get("addressType", "")), ("PORTS", _slice_ports),
                      ("ENDPOINTS", _slice_endpoints)],
    "ConfigMap": [("DATA", lambda o: len(o.get("data") or {}) + len(o.get("binaryData") or {}))],
    "Secret": [("TYPE", lambda o: o.get("type", "Opaque")),
               ("DATA", lambda o: len(o.get("data") or {}) + len(o.get("stringData") or {}))],
    "Namespace": [("STATUS", lambda o: field(o, "status", "phase", default="Active"))],
    "Node": [("STATUS", lambda o: "Ready,SchedulingDisabled" if field(o, "spec", "unschedulable") else "Ready"),
             ("ROLES", lambda o: ",".join(sorted(k.split("/", 1)[1] for k in (field(o, "metadata", "labels") or {})
                                                if k.startswith("node-role.kubernetes.io/"))) or "<none>")],
    "Job": [("COMPLETIONS", lambda o: f"{field(o, 'status', 'succeeded', default=0)}/"
                                      f"{field(o, 'spec', 'completions', default=1)}")],
    "PersistentVolume": [("CAPACITY", lambda o: field(o, "spec", "capacity", "storage", default="")),
                         ("ACCESS MODES", lambda o: ",".join(field(o, "spec", "accessModes", default=[]) or [])),
                         ("RECLAIM POLICY", lambda o: field(o, "spec", "persistentVolumeReclaimPolicy",
                                                         default="Retain")),
                         ("STATUS", lambda o: field(o, "status", "phase", default="Available"))],
    "PersistentVolumeClaim": [("STATUS", lambda o: field(o, "status", "phase", default="Pending")),
                              ("VOLUME", lambda o: field(o, "spec", "volumeName", default="")),
                              ("STORAGECLASS", lambda o: field(o, "spec", "storageClassName", default=""))],
    "Ingress": [("CLASS", lambda o: field(o, "spec", "ingressClassName", default="<none>")),
                ("HOSTS", lambda o: ",".join(r.get("host", "*") for r in field(o, "spec", "rules", default=[]) or [])
                 or "*")],
    "CustomResourceDefinition": [("CREATED AT", lambda o: field(o, "metadata", "creationTimestamp", default=""))],
}

WIDE: dict[str, list[tuple[str, Any]]] = {
    "Deployment": [("CONTAINERS", lambda o: ",".join(c.get("name", "") for c in _containers(o)) or "<none>"),
                   ("IMAGES", lambda o: ",".join(c.get("image", "") for c in _containers(o)) or "<none>"),
                   ("SELECTOR", lambda o: selector_text(field(o, "spec", "selector")))],
    "ReplicaSet": [("CONTAINERS", lambda o: ",".join(c.get("name", "") for c in _containers(o)) or "<none>"),
                   ("IMAGES", lambda o: ",".join(c.get("image", "") for c in _containers(o)) or "<none>"),
                   ("SELECTOR", lambda o: selector_text(field(o, "spec", "selector")))],
    "StatefulSet": [("CONTAINERS", lambda o: ",".join(c.get("name", "") for c in _containers(o)) or "<none>"),
                    ("IMAGES", lambda o: ",".join(c.get("image", "") for c in _containers(o)) or "<none>")],
    "Pod": [("IP", lambda o: field(o, "status", "podIP", default="<none>")),
            ("NODE", lambda o: field(o, "spec", "nodeName", default="<none>")),
            ("NOMINATED NODE", lambda o: field(o, "status", "nominatedNodeName", default="<none>")),
            ("READINESS GATES", lambda o: _readiness_gates(o))],
    "Service": [("SELECTOR", lambda o: selector_text(field(o, "spec", "selector")))],
    "Job": [("CONTAINERS", lambda o: ",".join(c.get("name", "") for c in _containers(o)) or "<none>"),
            ("IMAGES", lambda o: ",".join(c.get("image", "") for c in _containers(o)) or "<none>")],
}
