"""Keeps each Service's Endpoints, and its EndpointSlice (what kubectl
describe reads), to the ready pods its selector matches, at the service's
target ports."""

from __future__ import annotations

import logging
import threading

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from examples.controllers.base import Controller, controller_ref, selector_text
from examples.controllers.replicaset import is_ready

log = logging.getLogger(__name__)

SERVICE_NAME_LABEL = "kubernetes.io/service-name"
MANAGED_BY_LABEL = "endpointslice.kubernetes.io/managed-by"
MANAGER = "endpointslice-controller.k8s.io"


class EndpointsController(Controller):
    def __init__(self, api: client.ApiClient, stop: threading.Event) -> None:
        self.core, self.discovery = client.CoreV1Api(api), client.DiscoveryV1Api(api)
        self._serialize = client.ApiClient().sanitize_for_serialization
        super().__init__([self.core.list_service_for_all_namespaces, self.core.list_pod_for_all_namespaces], stop)

    def reconcile(self) -> None:
        for service in self.core.list_service_for_all_namespaces().items:
            if service.spec.selector:
                self._sync(service)

    def _sync(self, service) -> None:
        ns, name = service.metadata.namespace, service.metadata.name
        pods = [p for p in self.core.list_namespaced_pod(ns, label_selector=selector_text(service.spec.selector)).items
                if is_ready(p) and p.status.pod_ip and not p.metadata.deletion_timestamp]
        pods.sort(key=lambda p: p.status.pod_ip)
        ports = [{"name": p.name, "port": p.target_port if isinstance(p.target_port, int) else p.port,
                  "protocol": p.protocol or "TCP"} for p in service.spec.ports or []]
        for port in ports:
            if port["name"] is None:
                del port["name"]
        subsets = [{"addresses": [{"ip": p.status.pod_ip, "nodeName": p.spec.node_name,
                                   "targetRef": {"kind": "Pod", "namespace": ns, "name": p.metadata.name,
                                                 "uid": p.metadata.uid}} for p in pods],
                    "ports": ports}] if pods else []
        body = {"apiVersion": "v1", "kind": "Endpoints", "metadata": {"name": name, "namespace": ns,
                                                                       "labels": service.metadata.labels or {}},
                "subsets": subsets}
        self._sync_slice(service, pods, ports)
        try:
            current = self.core.read_namespaced_endpoints(name, ns)
        except ApiException as e:
            if e.status != 404:
                raise
            self.core.create_namespaced_endpoints(ns, body)
            log.info("endpoints created service=%s/%s addresses=%d", ns, name, len(pods))
            return
        if (self._serialize(current).get("subsets") or []) != subsets:
            body["metadata"]["resourceVersion"] = current.metadata.resource_version
            self.core.replace_namespaced_endpoints(name, ns, body)
            log.info("endpoints updated service=%s/%s addresses=%d", ns, name, len(pods))

    def _sync_slice(self, service, pods: list, ports: list[dict]) -> None:
        ns, name = service.metadata.namespace, service.metadata.name
        body = {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                "metadata": {"generateName": f"{name}-", "namespace": ns,
                             "labels": {SERVICE_NAME_LABEL: name, MANAGED_BY_LABEL: MANAGER},
                             "ownerReferences": [controller_ref(service, "v1", "Service")]},
                "addressType": "IPv4",
                "endpoints": [{"addresses": [p.status.pod_ip], "nodeName": p.spec.node_name,
                               "conditions": {"ready": True, "serving": True, "terminating": False},
                               "targetRef": {"kind": "Pod", "namespace": ns, "name": p.metadata.name,
                                             "uid": p.metadata.uid}} for p in pods],
                # a slice's port names are never unset (kubectl reads them through a pointer)
                "ports": [{"name": "", **port} for port in ports]}
        found = self.discovery.list_namespaced_endpoint_slice(ns, label_selector=f"{SERVICE_NAME_LABEL}={name}").items
        if not found:
            self.discovery.create_namespaced_endpoint_slice(ns, body)
            return
        current = self._serialize(found[0])
        if (current.get("endpoints") or []) != body["endpoints"] or (current.get("ports") or []) != body["ports"]:
            body["metadata"] = current["metadata"]
            self.discovery.replace_namespaced_endpoint_slice(found[0].metadata.name, ns, body)
