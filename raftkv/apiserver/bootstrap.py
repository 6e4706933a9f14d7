"""What the apiserver keeps in the store by itself: the ``kubernetes``
Service in the default namespace (the range's first cluster IP, port 443)
and its Endpoints, pointing at this apiserver."""

from __future__ import annotations

import logging

from raftkv.objects import AlreadyExists, NotFound, ObjectStore, WritePart

log = logging.getLogger(__name__)


def ensure_kubernetes_service(store: ObjectStore, address: str, port: int) -> None:
    service = {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"component": "apiserver", "provider": "kubernetes"}},
        "spec": {"type": "ClusterIP", "clusterIP": store.service_ranges.first_ip, "sessionAffinity": "None",
                 "ports": [{"name": "https", "port": 443, "protocol": "TCP", "targetPort": port}]},
    }
    endpoints = {
        "apiVersion": "v1", "kind": "Endpoints",
        "metadata": {"name": "kubernetes", "namespace": "default",
                     "labels": {"endpointslice.kubernetes.io/skip-mirror": "true"}},
        "subsets": [{"addresses": [{"ip": address}],
                     "ports": [{"name": "https", "port": port, "protocol": "TCP"}]}],
    }
    if not _exists(store, "services"):
        try:
            store.create(service, part=WritePart.MAIN)
            log.info("created the kubernetes service cluster_ip=%s", store.service_ranges.first_ip)
        except AlreadyExists:
            pass  # another apiserver made it meanwhile
    if not _exists(store, "endpoints"):
        try:
            store.create(endpoints)
            return
        except AlreadyExists:
            pass
    current = store.get("endpoints", "kubernetes", "default")
    if current.get("subsets") != endpoints["subsets"]:
        current["subsets"] = endpoints["subsets"]
        store.update(current)


def _exists(store: ObjectStore, resource: str) -> bool:
    try:
        store.get(resource, "kubernetes", "default")
    except NotFound:
        return False
    return True
