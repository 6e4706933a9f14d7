"""protobuf.decode on its own: the JSON form of Kubernetes' special values."""

from __future__ import annotations

import pytest

from raftkv._proto.k8spb import apps_pb2, core_pb2, runtime_pb2
from raftkv.apiserver import protobuf


def body(api_version: str, kind: str, message) -> bytes:
    unknown = runtime_pb2.Unknown(typeMeta=runtime_pb2.TypeMeta(apiVersion=api_version, kind=kind),
                                  raw=message.SerializeToString())
    return protobuf.MAGIC + unknown.SerializeToString()


def test_times_int_or_strings_quantities_and_bytes_read_as_their_json():
    pod = core_pb2.Pod()
    pod.metadata.name = "p"
    pod.metadata.creationTimestamp.SetInParent()  # Go's zero time: an empty message
    pod.status.startTime.seconds = 1_700_000_000
    container = pod.spec.containers.add(name="c", image="i")
    container.resources.limits["cpu"].string = "500m"
    decoded = protobuf.decode(body("v1", "Pod", pod))
    assert decoded["apiVersion"] == "v1" and decoded["kind"] == "Pod"
    assert decoded["metadata"] == {"name": "p", "creationTimestamp": None}
    assert decoded["status"] == {"startTime": "2023-11-14T22:13:20Z"}
    assert decoded["spec"]["containers"] == [{"name": "c", "image": "i", "resources": {"limits": {"cpu": "500m"}}}]

    service = core_pb2.Service()
    by_name, by_number = service.spec.ports.add(port=80), service.spec.ports.add(port=81)
    by_name.targetPort.type, by_name.targetPort.strVal = 1, "http"
    by_number.targetPort.intVal = 8080
    ports = protobuf.decode(body("v1", "Service", service))["spec"]["ports"]
    assert [p["targetPort"] for p in ports] == ["http", 8080]

    secret = core_pb2.Secret(data={"k": b"\x00\xff"})
    assert protobuf.decode(body("v1", "Secret", secret))["data"] == {"k": "AP8="}


def test_go_zeros_are_dropped_but_a_pointers_zero_is_kept():
    deployment = apps_pb2.Deployment()
    deployment.spec.replicas = 0          # *int32 in Go: zero means zero
    deployment.spec.minReadySeconds = 0   # int32 in Go: written always, left out of JSON
    deployment.spec.paused = False
    deployment.spec.strategy.type = ""
    decoded = protobuf.decode(body("apps/v1", "Deployment", deployment))
    assert decoded["spec"] == {"replicas": 0, "strategy": {}}


@pytest.mark.parametrize("data, reason", [
    (b"{}", "prefix"),
    (protobuf.MAGIC + b"\x0a\x05", "not valid protobuf"),
])
def test_bodies_that_are_not_the_encoding_are_not_readable(data, reason):
    with pytest.raises(protobuf.NotReadable, match=reason):
        protobuf.decode(data)


def test_a_nested_undeclared_field_is_named_by_its_path():
    deployment = apps_pb2.Deployment()
    deployment.spec.template.spec.containers.add(name="c")
    raw = bytearray(deployment.SerializeToString())
    # append field 99 (a varint) to the container: rebuild the nesting by hand
    container = deployment.spec.template.spec.containers[0].SerializeToString() + b"\x98\x06\x01"
    pod_spec = b"\x12" + bytes([len(container)]) + container
    template = b"\x12" + bytes([len(pod_spec)]) + pod_spec
    spec = b"\x1a" + bytes([len(template)]) + template
    raw = b"\x12" + bytes([len(spec)]) + spec
    unknown = runtime_pb2.Unknown(typeMeta=runtime_pb2.TypeMeta(apiVersion="apps/v1", kind="Deployment"), raw=raw)
    with pytest.raises(protobuf.NotReadable, match=r"Deployment\.spec\.template\.spec\.containers#99"):
        protobuf.decode(protobuf.MAGIC + unknown.SerializeToString())
