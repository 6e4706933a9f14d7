"""The official Kubernetes Python client against ``raftkv apiserver``: typed
calls, conflicts, the status and binding subresources, what the apiserver
decides (cluster IPs, node ports, the kubernetes Service), watch."""

from __future__ import annotations

import ipaddress
import json
import threading
import urllib.error
import urllib.request

import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, watch  # noqa: E402
from kubernetes.client.exceptions import ApiException  # noqa: E402

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def core(server):
    config = client.Configuration()
    config.host = server
    return client.CoreV1Api(client.ApiClient(config))


@pytest.fixture(scope="module")
def apps(server):
    config = client.Configuration()
    config.host = server
    return client.AppsV1Api(client.ApiClient(config))


def pod(name: str | None = None, generate_name: str | None = None, labels: dict | None = None) -> client.V1Pod:
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name, generate_name=generate_name, labels=labels),
                        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="busybox")]))


def failure(e: ApiException) -> tuple[int, str, str]:
    body = json.loads(e.body)
    return e.status, body["reason"], body["message"]


def test_typed_objects_need_no_api_version_and_get_generated_names(core):
    created = core.create_namespaced_pod("default", pod(generate_name="typed-", labels={"app": "typed"}))
    assert created.metadata.name.startswith("typed-") and len(created.metadata.name) == len("typed-") + 5
    assert (created.api_version, created.kind) == ("v1", "Pod")
    listed = core.list_namespaced_pod("default", label_selector="app=typed")
    assert [p.metadata.name for p in listed.items] == [created.metadata.name]
    with pytest.raises(ApiException) as wrong:
        core.create_namespaced_pod("default", {"apiVersion": "apps/v1", "kind": "Pod",
                                               "metadata": {"name": "x"}, "spec": {"containers": []}})
    assert failure(wrong.value) == (400, "BadRequest", "the API version in the data (apps/v1) does not match "
                                                       "the expected API version (v1)")


def test_a_stale_replace_conflicts_and_a_missing_object_is_not_found(core):
    created = core.create_namespaced_config_map("default", client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="settings"), data={"a": "1"}))
    core.patch_namespaced_config_map("settings", "default", {"data": {"a": "2"}})
    created.data = {"a": "3"}
    with pytest.raises(ApiException) as stale:
        core.replace_namespaced_config_map("settings", "default", created)
    assert failure(stale.value) == (409, "Conflict", 'Operation cannot be fulfilled on configmaps "settings": the '
                                                     "object has been modified; please apply your changes to the "
                                                     "latest version and try again")
    with pytest.raises(ApiException) as missing:
        core.read_namespaced_config_map("nope", "default")
    assert failure(missing.value) == (404, "NotFound", 'configmaps "nope" not found')


def test_status_is_written_through_its_subresource_only(core):
    core.create_namespaced_pod("default", pod("status-demo"))
    running = core.patch_namespaced_pod_status("status-demo", "default", {"status": {"phase": "Running"},
                                                                            "spec": {"nodeName": "ignored"}})
    assert running.status.phase == "Running" and running.spec.node_name is None
    current = core.read_namespaced_pod("status-demo", "default")
    current.status.phase = "Failed"
    current.metadata.labels = {"seen": "yes"}
    replaced = core.replace_namespaced_pod("status-demo", "default", current)
    assert replaced.status.phase == "Running" and replaced.metadata.labels == {"seen": "yes"}


def test_a_status_path_takes_get_put_and_patch_only(server, core):
    core.create_namespaced_pod("default", pod("status-only"))
    request = urllib.request.Request(f"{server}/api/v1/namespaces/default/pods/status-only/status",
                                     method="DELETE")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)
    body = json.loads(refused.value.read())
    assert (refused.value.code, body["reason"], body["message"]) == (
        405, "MethodNotAllowed", "the server does not allow this method on the requested resource")
    assert core.read_namespaced_pod("status-only", "default").metadata.name == "status-only"


def test_a_kind_without_a_status_has_no_status_subresource(server, core):
    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="plain")))
    request = urllib.request.Request(f"{server}/api/v1/namespaces/default/configmaps/plain/status", method="PATCH",
                                     data=b'{"data": {}}', headers={"Content-Type": "application/merge-patch+json"})
    with pytest.raises(urllib.error.HTTPError) as missing:
        urllib.request.urlopen(request, timeout=10)
    assert missing.value.code == 404


def test_binding_places_a_pod_once(core):
    core.create_namespaced_pod("default", pod("to-place"))
    binding = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": "to-place"},
               "target": {"apiVersion": "v1", "kind": "Node", "name": "node-a"}}
    answer = core.create_namespaced_pod_binding("to-place", "default", binding, _preload_content=False)
    assert answer.status == 201
    placed = core.read_namespaced_pod("to-place", "default")
    assert placed.spec.node_name == "node-a"
    assert [(c.type, c.status) for c in placed.status.conditions] == [("PodScheduled", "True")]
    with pytest.raises(ApiException) as again:
        core.create_namespaced_pod_binding("to-place", "default", {**binding, "target": {"name": "node-b"}},
                                           _preload_content=False)
    assert failure(again.value) == (409, "Conflict", 'Operation cannot be fulfilled on pods/binding "to-place": '
                                                     'pod to-place is already assigned to node "node-a"')


def test_services_get_cluster_ips_and_node_ports_and_kubernetes_comes_first(core):
    services = core.list_namespaced_service("default").items
    assert services[0].metadata.name == "kubernetes"
    assert services[0].spec.cluster_ip == "10.0.0.1" and services[0].spec.ports[0].port == 443
    endpoints = core.read_namespaced_endpoints("kubernetes", "default")
    assert endpoints.subsets[0].addresses[0].ip == "127.0.0.1"
    exposed = core.create_namespaced_service("default", client.V1Service(
        metadata=client.V1ObjectMeta(name="exposed"),
        spec=client.V1ServiceSpec(type="NodePort", selector={"app": "x"}, ports=[client.V1ServicePort(port=80)])))
    assert ipaddress.ip_address(exposed.spec.cluster_ip) in ipaddress.ip_network("10.0.0.0/24")
    assert exposed.spec.cluster_ip != "10.0.0.1"
    node_port = exposed.spec.ports[0].node_port
    assert 30000 <= node_port <= 32767
    assert exposed.spec.ports[0].target_port == 80 and exposed.spec.ports[0].protocol == "TCP"
    with pytest.raises(ApiException) as taken:
        core.create_namespaced_service("default", client.V1Service(
            metadata=client.V1ObjectMeta(name="clash"),
            spec=client.V1ServiceSpec(type="NodePort", ports=[client.V1ServicePort(port=80, node_port=node_port)])))
    assert failure(taken.value) == (422, "Invalid", f'Service "clash" is invalid: spec.ports[0].nodePort: Invalid '
                                                    f"value: {node_port}: provided port is already allocated")


def test_watch_from_a_list_sees_what_follows_in_order(core, apps):
    version = core.list_namespaced_config_map("default").metadata.resource_version
    seen: list[tuple[str, str]] = []
    stream = watch.Watch()

    def follow() -> None:
        for event in stream.stream(core.list_namespaced_config_map, "default", resource_version=version,
                                   timeout_seconds=20):
            seen.append((event["type"], event["object"].metadata.name))
            if event["type"] == "DELETED":
                stream.stop()

    reader = threading.Thread(target=follow)
    reader.start()
    core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w1")))
    core.patch_namespaced_config_map("w1", "default", {"data": {"k": "v"}})
    core.delete_namespaced_config_map("w1", "default")
    reader.join(30)
    assert seen == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")]


def test_deleting_a_placed_pod_leaves_it_terminating_until_its_node_ends_it(core):
    core.create_namespaced_pod("default", pod("graceful"))
    core.create_namespaced_pod_binding("graceful", "default", {
        "apiVersion": "v1", "kind": "Binding", "metadata": {"name": "graceful"},
        "target": {"kind": "Node", "name": "node-a"}}, _preload_content=False)
    core.delete_namespaced_pod("graceful", "default")
    terminating = core.read_namespaced_pod("graceful", "default")
    assert terminating.metadata.deletion_grace_period_seconds == 30
    assert terminating.metadata.deletion_timestamp is not None
    core.delete_namespaced_pod("graceful", "default", grace_period_seconds=0)
    with pytest.raises(ApiException) as gone:
        core.read_namespaced_pod("graceful", "default")
    assert gone.value.status == 404
