"""Places each pending pod on the schedulable Node running the fewest
pods, through the pods/binding subresource (which refuses a second
placement, so two schedulers never place a pod twice)."""

from __future__ import annotations

import collections
import logging
import threading

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from examples.controllers.base import Controller

log = logging.getLogger(__name__)


class Scheduler(Controller):
    def __init__(self, api: client.ApiClient, stop: threading.Event) -> None:
        self.core = client.CoreV1Api(api)
        super().__init__([self.core.list_pod_for_all_namespaces, self.core.list_node], stop)

    def reconcile(self) -> None:
        nodes = [n.metadata.name for n in self.core.list_node().items if not n.spec or not n.spec.unschedulable]
        if not nodes:
            return
        pods = self.core.list_pod_for_all_namespaces().items
        load = collections.Counter({name: 0 for name in nodes})
        load.update(p.spec.node_name for p in pods if p.spec.node_name in load)
        for pod in pods:
            if pod.spec.node_name or pod.metadata.deletion_timestamp:
                continue
            node = min(nodes, key=lambda n: (load[n], n))
            binding = {"apiVersion": "v1", "kind": "Binding",
                       "metadata": {"name": pod.metadata.name, "namespace": pod.metadata.namespace},
                       "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
            try:
                # the answer is a Status, which the client cannot read as a Binding
                self.core.create_namespaced_pod_binding(pod.metadata.name, pod.metadata.namespace, binding,
                                                        _preload_content=False)
            except ApiException as e:
                if e.status not in (404, 409):  # gone, or placed by someone else meanwhile
                    raise
                continue
            load[node] += 1
            log.info("bound pod=%s/%s node=%s", pod.metadata.namespace, pod.metadata.name, node)
