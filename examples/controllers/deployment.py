"""Runs each Deployment through ReplicaSets: one per pod template (named
after the Deployment and a hash of the template), scaled to the
Deployment's replicas while the older ones go to zero; the Deployment's
status sums theirs."""

from __future__ import annotations

import hashlib
import json
import logging
import threading

from kubernetes import client

from examples.controllers.base import Controller, controller_ref, owned_by

log = logging.getLogger(__name__)

HASH_LABEL = "pod-template-hash"


def template_hash(template: dict) -> str:
    digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()
    return "".join(c for c in digest if c in "bcdfghjklmnpqrstvwxz2456789")[:10] or digest[:10]


class DeploymentController(Controller):
    def __init__(self, api: client.ApiClient, stop: threading.Event) -> None:
        self.apps = client.AppsV1Api(api)
        self._serialize = client.ApiClient().sanitize_for_serialization
        super().__init__([self.apps.list_deployment_for_all_namespaces,
                          self.apps.list_replica_set_for_all_namespaces], stop)

    def reconcile(self) -> None:
        for deployment in self.apps.list_deployment_for_all_namespaces().items:
            if not deployment.metadata.deletion_timestamp:
                self._sync(deployment)

    def _sync(self, d) -> None:
        ns, name = d.metadata.namespace, d.metadata.name
        template = self._serialize(d.spec.template)
        pod_hash = template_hash(template)
        replicas = d.spec.replicas if d.spec.replicas is not None else 1
        owned = [rs for rs in self.apps.list_namespaced_replica_set(ns).items if owned_by(rs, d)]
        current = next((rs for rs in owned if (rs.metadata.labels or {}).get(HASH_LABEL) == pod_hash), None)
        if current is None:
            labels = {**(template["metadata"].get("labels") or {}), HASH_LABEL: pod_hash}
            current = self.apps.create_namespaced_replica_set(ns, {
                "apiVersion": "apps/v1", "kind": "ReplicaSet",
                "metadata": {"name": f"{name}-{pod_hash}", "labels": labels,
                             "ownerReferences": [controller_ref(d, "apps/v1", "Deployment")]},
                "spec": {"replicas": replicas,
                         "selector": {"matchLabels": {**(d.spec.selector.match_labels or {}), HASH_LABEL: pod_hash}},
                         "template": {"metadata": {**template["metadata"], "labels": labels},
                                      "spec": template["spec"]}},
            })
            log.info("created replicaset deployment=%s/%s replicaset=%s", ns, name, current.metadata.name)
        elif current.spec.replicas != replicas:
            self.apps.patch_namespaced_replica_set_scale(current.metadata.name, ns, {"spec": {"replicas": replicas}})
        for old in owned:
            if old.metadata.uid != current.metadata.uid and old.spec.replicas:
                self.apps.patch_namespaced_replica_set_scale(old.metadata.name, ns, {"spec": {"replicas": 0}})
        statuses = [rs.status for rs in owned if rs.status]
        ready = sum(s.ready_replicas or 0 for s in statuses)
        status = {"replicas": sum(s.replicas or 0 for s in statuses), "readyReplicas": ready,
                  "availableReplicas": ready, "observedGeneration": d.metadata.generation,
                  "updatedReplicas": (current.status.replicas or 0) if current.status else 0}
        have = self._serialize(d.status) or {}
        if any(have.get(k, 0) != v for k, v in status.items()):
            self.apps.patch_namespaced_deployment_status(name, ns, {"status": status})
