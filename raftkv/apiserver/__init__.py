"""The Kubernetes REST API over the object layer: ``raftkv apiserver``.

kubectl and Kubernetes client libraries reach raftkv's objects through it:
discovery, the resource paths of every kind the object layer knows (custom
resources included), watches as chunked JSON event streams, and errors as
Kubernetes Status objects.
"""
