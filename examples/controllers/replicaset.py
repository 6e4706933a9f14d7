"""Keeps each ReplicaSet's number of pods: creates pods from its template
(named after it, with a random suffix, owned by it), deletes the extra
ones (unscheduled first), and reports the counts in its status."""

from __future__ import annotations

import logging
import threading

from kubernetes import client

from examples.controllers.base import Controller, controller_ref, owned_by, selector_text

log = logging.getLogger(__name__)


def is_ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in (pod.status and pod.status.conditions) or [])


class ReplicaSetController(Controller):
    def __init__(self, api: client.ApiClient, stop: threading.Event) -> None:
        self.apps, self.core = client.AppsV1Api(api), client.CoreV1Api(api)
        super().__init__([self.apps.list_replica_set_for_all_namespaces, self.core.list_pod_for_all_namespaces],
                         stop)

    def reconcile(self) -> None:
        for rs in self.apps.list_replica_set_for_all_namespaces().items:
            if not rs.metadata.deletion_timestamp:
                self._sync(rs)

    def _sync(self, rs) -> None:
        ns, name = rs.metadata.namespace, rs.metadata.name
        selector = selector_text(rs.spec.selector.match_labels)
        pods = [p for p in self.core.list_namespaced_pod(ns, label_selector=selector).items
                if owned_by(p, rs) and not p.metadata.deletion_timestamp]
        wanted = rs.spec.replicas if rs.spec.replicas is not None else 1
        if len(pods) < wanted:
            template = client.ApiClient().sanitize_for_serialization(rs.spec.template)
            for _ in range(wanted - len(pods)):
                created = self.core.create_namespaced_pod(ns, {
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"generateName": f"{name}-", "labels": template["metadata"].get("labels", {}),
                                 "ownerReferences": [controller_ref(rs, "apps/v1", "ReplicaSet")]},
                    "spec": template["spec"],
                })
                log.info("created pod replicaset=%s/%s pod=%s", ns, name, created.metadata.name)
        elif len(pods) > wanted:
            # the ones doing least first: unscheduled, then not ready, then the newest
            pods.sort(key=lambda p: (bool(p.spec.node_name), is_ready(p), -p.metadata.creation_timestamp.timestamp()))
            for pod in pods[:len(pods) - wanted]:
                self.core.delete_namespaced_pod(pod.metadata.name, ns)
                log.info("deleted pod replicaset=%s/%s pod=%s", ns, name, pod.metadata.name)
            pods = pods[len(pods) - wanted:]
        status = {"replicas": len(pods), "readyReplicas": sum(map(is_ready, pods)),
                  "availableReplicas": sum(map(is_ready, pods)), "observedGeneration": rs.metadata.generation}
        have = client.ApiClient().sanitize_for_serialization(rs.status) or {}
        if any(have.get(k, 0) != v for k, v in status.items()):
            self.apps.patch_namespaced_replica_set_status(name, ns, {"status": status})
