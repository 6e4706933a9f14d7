"""A stand-in for the kubelets of a few Nodes: registers the Nodes, and
reports every pod bound to one of them as running and ready, with a pod
IP from the node's range (there are no containers to run here)."""

from __future__ import annotations

import datetime
import logging
import threading

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from examples.controllers.base import Controller

log = logging.getLogger(__name__)


class NodeAgents(Controller):
    def __init__(self, api: client.ApiClient, names: list[str], stop: threading.Event) -> None:
        self.core = client.CoreV1Api(api)
        self.names = names
        super().__init__([self.core.list_pod_for_all_namespaces], stop)

    def register(self) -> None:
        for index, name in enumerate(self.names):
            node = {"apiVersion": "v1", "kind": "Node",
                    "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
                    "spec": {"podCIDR": f"10.244.{index}.0/24"}}
            try:
                self.core.create_node(node)
                log.info("registered node=%s", name)
            except ApiException as e:
                if e.status != 409:
                    raise
            self.core.patch_node_status(name, {"status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
                "addresses": [{"type": "InternalIP", "address": f"192.168.0.{index + 10}"}]}})

    def run(self) -> None:
        self.register()
        super().run()

    def reconcile(self) -> None:
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        pods = self.core.list_pod_for_all_namespaces().items
        for index, name in enumerate(self.names):
            mine = [p for p in pods if p.spec.node_name == name]
            taken = {p.status.pod_ip for p in mine if p.status and p.status.pod_ip}
            for pod in mine:
                if pod.metadata.deletion_timestamp:  # its containers "stop" at once: end the grace period
                    try:
                        self.core.delete_namespaced_pod(pod.metadata.name, pod.metadata.namespace,
                                                        grace_period_seconds=0)
                        log.info("pod stopped pod=%s/%s node=%s", pod.metadata.namespace, pod.metadata.name, name)
                    except ApiException as e:
                        if e.status != 404:
                            raise
                    continue
                if pod.status and pod.status.phase == "Running":
                    continue
                ip = next(f"10.244.{index}.{n}" for n in range(2, 255) if f"10.244.{index}.{n}" not in taken)
                taken.add(ip)
                containers = [{"name": c.name, "image": c.image, "imageID": "", "ready": True, "restartCount": 0,
                               "started": True, "state": {"running": {"startedAt": now}}}
                              for c in pod.spec.containers]
                self.core.patch_namespaced_pod_status(pod.metadata.name, pod.metadata.namespace, {"status": {
                    "phase": "Running", "podIP": ip, "hostIP": f"192.168.0.{index + 10}", "startTime": now,
                    "conditions": [{"type": t, "status": "True", "lastTransitionTime": now}
                                   for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")],
                    "containerStatuses": containers}})
                log.info("pod running pod=%s/%s node=%s ip=%s", pod.metadata.namespace, pod.metadata.name,
                         name, ip)
