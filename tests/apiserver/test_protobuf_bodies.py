"""Bodies in Kubernetes' protobuf encoding, as typed clients send them:
real kubectl's `create` and `run` verbs. What the server keeps must be what
the same command writes as JSON (`--dry-run=client -o json`), and a body
with a field the server cannot read is refused whole (415), never stripped."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request

import pytest

from raftkv._proto.k8spb import core_pb2, runtime_pb2
from raftkv.apiserver import protobuf

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(shutil.which("kubectl") is None,
                                                            reason="kubectl is not installed")]

SERVER_SET = ("uid", "resourceVersion", "creationTimestamp", "generation", "namespace")


def kubectl(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--server", url, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def created_as_kubectl_means_it(server: str, verb: list[str], resource: str, name: str) -> tuple[dict, dict]:
    """(what the command would send as JSON, what the server kept after it ran)."""
    cut = verb.index("--") if "--" in verb else len(verb)  # the command's own arguments come last
    sent = json.loads(kubectl(server, *verb[:cut], "--dry-run=client", "-o", "json", *verb[cut:]).stdout)
    done = kubectl(server, *verb)
    assert done.returncode == 0, done.stderr
    kept = json.loads(kubectl(server, "get", resource, name, "-n", "pb", "-o", "json").stdout)
    for field in SERVER_SET:
        kept["metadata"].pop(field, None)
        sent["metadata"].pop(field, None)
    return sent, kept


def test_kubectl_create_and_run_keep_exactly_what_their_json_would(server):
    assert kubectl(server, "create", "namespace", "pb").stdout == "namespace/pb created\n"

    sent, kept = created_as_kubectl_means_it(
        server, ["create", "configmap", "cm", "-n", "pb", "--from-literal=color=blue", "--from-literal=empty="],
        "configmap", "cm")
    assert kept["data"] == sent["data"] == {"color": "blue", "empty": ""}
    assert kept["metadata"] == sent["metadata"]

    sent, kept = created_as_kubectl_means_it(
        server, ["create", "secret", "generic", "s", "-n", "pb", "--from-literal=password=hunter2"], "secret", "s")
    assert kept["data"] == sent["data"] == {"password": "aHVudGVyMg=="}

    sent, kept = created_as_kubectl_means_it(
        server, ["create", "deployment", "web", "-n", "pb", "--image=nginx:1.25", "--replicas=0", "--port=80"],
        "deployment", "web")
    assert kept["spec"]["replicas"] == 0  # a pointer's zero is kept
    assert kept["spec"]["template"] == sent["spec"]["template"]
    assert kept["spec"]["selector"] == sent["spec"]["selector"] == {"matchLabels": {"app": "web"}}

    sent, kept = created_as_kubectl_means_it(
        server, ["run", "p", "-n", "pb", "--image=busybox", "--restart=Never", "--env=A=B", "--labels=app=x",
                 "--port=8080", "--", "sleep", "10"], "pod", "p")
    assert kept["spec"]["containers"] == sent["spec"]["containers"]
    assert kept["spec"]["containers"][0]["args"] == ["sleep", "10"]
    assert (kept["spec"]["restartPolicy"], kept["spec"]["dnsPolicy"]) == ("Never", "ClusterFirst")
    assert kept["metadata"]["labels"] == {"app": "x"}

    sent, kept = created_as_kubectl_means_it(
        server, ["create", "service", "nodeport", "svc", "-n", "pb", "--tcp=80:8080"], "service", "svc")
    (port,) = kept["spec"]["ports"]
    assert (port["port"], port["targetPort"], port["protocol"]) == (80, 8080, "TCP")
    assert 30000 <= port["nodePort"] <= 32767 and kept["spec"]["type"] == "NodePort"

    sent, kept = created_as_kubectl_means_it(
        server, ["create", "job", "j", "-n", "pb", "--image=busybox", "--", "echo", "hi"], "job", "j")
    assert kept["spec"]["template"] == sent["spec"]["template"]


def post(server: str, path: str, body: bytes, content_type: str) -> tuple[int, dict]:
    request = urllib.request.Request(server + path, data=body, method="POST",
                                     headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    unknown = runtime_pb2.Unknown(typeMeta=runtime_pb2.TypeMeta(apiVersion=api_version, kind=kind), raw=raw)
    return protobuf.MAGIC + unknown.SerializeToString()


def test_a_field_the_server_cannot_read_refuses_the_body_whole(server):
    config_map = core_pb2.ConfigMap(data={"a": "b"})
    config_map.metadata.name = "extra"
    undeclared = b"\xc8\x06\x01"  # field 105, a varint: not part of a ConfigMap
    code, status = post(server, "/api/v1/namespaces/default/configmaps",
                        envelope("v1", "ConfigMap", config_map.SerializeToString() + undeclared),
                        protobuf.CONTENT_TYPE)
    assert (code, status["reason"]) == (415, "UnsupportedMediaType")
    assert "ConfigMap#105" in status["message"] and "application/json" in status["message"]
    assert kubectl(server, "get", "configmap", "extra").returncode == 1  # nothing was created


def test_a_kind_not_read_in_protobuf_and_garbage_are_refused(server):
    code, status = post(server, "/api/v1/namespaces/default/endpoints", envelope("v1", "Endpoints", b""),
                        protobuf.CONTENT_TYPE)
    assert (code, status["reason"]) == (415, "UnsupportedMediaType")
    assert "Endpoints (v1)" in status["message"]
    for body in (b"not protobuf", protobuf.MAGIC + b"\xff\xff\xff"):
        code, status = post(server, "/api/v1/namespaces/default/configmaps", body, protobuf.CONTENT_TYPE)
        assert (code, status["reason"]) == (415, "UnsupportedMediaType"), status
    code, status = post(server, "/api/v1/namespaces/default/configmaps", b"<xml/>", "application/xml")
    assert (code, status["reason"]) == (415, "UnsupportedMediaType")
