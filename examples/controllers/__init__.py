"""Small Kubernetes controllers for ``raftkv apiserver``, on the official
Kubernetes Python client: a Deployment controller, a ReplicaSet controller,
a scheduler, an endpoints controller and a stand-in for the kubelet that
registers Nodes and reports the pods bound to them as running.

Run them all with ``python -m examples.controllers --server URL``.
"""
