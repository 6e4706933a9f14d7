"""Real kubectl against ``raftkv apiserver --embedded``: discovery, apply,
get with selectors and server-side tables, label, patch, errors, delete."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import urllib.request

import pytest

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(shutil.which("kubectl") is None,
                                                            reason="kubectl is not installed")]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def kubectl(url: str, *args: str, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--server", url, *args], input=input, capture_output=True, text=True,
                          timeout=60, check=False)


def test_apply_get_and_errors(server):
    app = os.path.join(REPO, "examples", "app.yaml")
    assert kubectl(server, "apply", "-f", app, "--validate=false").stdout.splitlines() == [
        "deployment.apps/web created", "service/web created"]
    assert kubectl(server, "apply", "-f", app, "--validate=false").stdout.splitlines() == [
        "deployment.apps/web unchanged", "service/web unchanged"]
    table = kubectl(server, "get", "deploy").stdout.splitlines()
    assert table[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert table[1].split()[:4] == ["web", "0/3", "0", "0"]
    assert kubectl(server, "get", "deploy", "-o", "wide").stdout.splitlines()[0].split()[-3:] == [
        "CONTAINERS", "IMAGES", "SELECTOR"]
    assert kubectl(server, "get", "deploy", "-l", "app=web", "-o", "name").stdout == "deployment.apps/web\n"
    assert kubectl(server, "get", "deploy", "-l", "app=nope").stderr == "No resources found in default namespace.\n"
    missing = kubectl(server, "get", "configmap", "nope")
    assert missing.returncode == 1 and missing.stderr == 'Error from server (NotFound): configmaps "nope" not found\n'
    bad = kubectl(server, "get", "deploy", "-l", "app in (")
    assert bad.returncode == 1 and bad.stderr.startswith("Error from server (BadRequest)")
    assert kubectl(server, "label", "deploy", "web", "tier=front").stdout == "deployment.apps/web labeled\n"
    doc = json.loads(kubectl(server, "get", "deploy", "web", "-o", "json").stdout)
    assert doc["metadata"]["labels"]["tier"] == "front"
    patched = kubectl(server, "patch", "deploy", "web", "--type", "merge", "-p", '{"spec":{"replicas":5}}')
    assert patched.stdout == "deployment.apps/web patched\n"
    assert kubectl(server, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "5"
    assert kubectl(server, "scale", "--replicas=2", "deployment/web").stdout == "deployment.apps/web scaled\n"
    assert kubectl(server, "get", "deploy", "web", "-o", "jsonpath={.spec.replicas}").stdout == "2"
    # apply of a changed manifest: a strategic merge patch that keeps what it does not name
    with open(app) as f:
        changed = f.read().replace("nginx:1.25", "nginx:1.26")
    assert kubectl(server, "apply", "-f", "-", "--validate=false", input=changed).stdout.splitlines() == [
        "deployment.apps/web configured", "service/web unchanged"]
    doc = json.loads(kubectl(server, "get", "deploy", "web", "-o", "json").stdout)
    assert [c["image"] for c in doc["spec"]["template"]["spec"]["containers"]] == ["nginx:1.26"]
    assert doc["metadata"]["labels"]["tier"] == "front"  # kept: apply does not own it
    assert kubectl(server, "delete", "-f", app).stdout.splitlines() == [
        'deployment.apps "web" deleted', 'service "web" deleted']


def test_discovery(server):
    resources = kubectl(server, "api-resources", "--no-headers").stdout
    assert any(line.split()[0] == "deployments" for line in resources.splitlines())
    assert "Server Version: v1.32.0-raftkv" in kubectl(server, "version").stdout


def test_explain_shows_the_kinds_fields_and_types(server):
    explained = kubectl(server, "explain", "deployment")
    assert explained.returncode == 0, explained.stderr
    lines = explained.stdout.splitlines()
    assert lines[:3] == ["GROUP:      apps", "KIND:       Deployment", "VERSION:    v1"]
    fields = [line.split() for line in lines if line.startswith("  ") and "<" in line]
    assert [f[0] for f in fields] == ["apiVersion", "kind", "metadata", "spec", "status"]
    replicas = kubectl(server, "explain", "deployment.spec.replicas").stdout
    assert "FIELD: replicas <integer>" in replicas
    containers = kubectl(server, "explain", "pods.spec.containers").stdout
    assert "FIELD: containers <[]Object>" in containers and "image\t<string>" in containers


def test_aggregated_discovery_when_asked_for(server):
    aggregated = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    asked = urllib.request.Request(server + "/apis", headers={"Accept": aggregated + ",application/json"})
    with urllib.request.urlopen(asked, timeout=10) as answer:
        assert answer.headers["Content-Type"] == aggregated
        groups = {item["metadata"]["name"]: item for item in json.load(answer)["items"]}
    assert "" not in groups and groups["apps"]["versions"][0]["version"] == "v1"
    deployments = next(r for r in groups["apps"]["versions"][0]["resources"] if r["resource"] == "deployments")
    assert (deployments["scope"], deployments["responseKind"]["kind"]) == ("Namespaced", "Deployment")
    assert sorted(s["subresource"] for s in deployments["subresources"]) == ["scale", "status"]
    with urllib.request.urlopen(server + "/api", timeout=10) as plain:  # without asking: the classic documents
        assert json.load(plain)["kind"] == "APIVersions"


def test_namespaces_and_watch(server):
    manifest = """
apiVersion: v1
kind: Namespace
metadata: {name: team}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: settings, namespace: team}
data: {color: blue}
"""
    assert kubectl(server, "apply", "-f", "-", "--validate=false", input=manifest).stdout.splitlines() == [
        "namespace/team created", "configmap/settings created"]
    listed = kubectl(server, "get", "cm", "-n", "team").stdout.splitlines()
    assert listed[0].split() == ["NAME", "DATA", "AGE"] and listed[1].split()[:2] == ["settings", "1"]
    assert "team" in kubectl(server, "get", "cm", "-A", "-o", "name").stdout + \
        kubectl(server, "get", "cm", "-A").stdout
    watch = subprocess.Popen(["kubectl", "--server", server, "get", "cm", "-n", "team", "-w", "-o", "name",
                              "--request-timeout=20s"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert watch.stdout.readline() == "configmap/settings\n"
        kubectl(server, "patch", "cm", "settings", "-n", "team", "--type", "merge", "-p", '{"data":{"color":"red"}}')
        assert watch.stdout.readline() == "configmap/settings\n"
    finally:
        watch.kill()
        watch.wait()
    assert kubectl(server, "delete", "ns", "team").stdout == 'namespace "team" deleted\n'
    gone = kubectl(server, "get", "cm", "settings", "-n", "team")
    assert gone.returncode == 1 and "NotFound" in gone.stderr


CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: crontabs.stable.example.com}
spec:
  group: stable.example.com
  scope: Namespaced
  names: {plural: crontabs, singular: crontab, kind: CronTab, shortNames: [ct]}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            properties:
              cronSpec: {type: string}
              replicas: {type: integer}
"""


def test_selectors_paging_annotate_and_refusals_print_what_kubectl_prints(server, tmp_path):
    for i in range(1, 6):
        assert kubectl(server, "create", "cm", f"page{i}", f"--from-literal=n={i}").returncode == 0
    for name, labels in (("page1", ["tier=a"]), ("page2", ["tier=b"]), ("page3", ["tier=c", "env=x"])):
        assert kubectl(server, "label", "cm", name, *labels).stdout == f"configmap/{name} labeled\n"
    assert kubectl(server, "annotate", "cm", "page1", "note=hi").stdout == "configmap/page1 annotated\n"
    assert kubectl(server, "get", "cm", "page1", "-o", "jsonpath={.metadata.annotations.note}").stdout == "hi"

    def selected(selector: str) -> list[str]:
        names = kubectl(server, "get", "cm", "-l", selector, "-o", "name").stdout.split()
        return [n.removeprefix("configmap/") for n in names if n.startswith("configmap/page")]

    assert selected("tier=a") == selected("tier==a") == ["page1"]
    assert selected("tier!=a") == ["page2", "page3", "page4", "page5"]
    assert selected("tier in (a,b)") == ["page1", "page2"]
    assert selected("tier notin (a)") == ["page2", "page3", "page4", "page5"]
    assert selected("env") == selected("tier,env=x") == ["page3"]
    assert selected("!env") == ["page1", "page2", "page4", "page5"]
    whole = kubectl(server, "get", "cm", "-o", "name").stdout
    assert kubectl(server, "get", "cm", "--chunk-size=2", "-o", "name").stdout == whole
    assert whole.count("configmap/page") == 5

    stale = tmp_path / "stale.yaml"
    stale.write_text(kubectl(server, "get", "cm", "page1", "-o", "yaml").stdout)
    kubectl(server, "label", "cm", "page1", "bump=1")
    replaced = kubectl(server, "replace", "-f", str(stale))
    assert replaced.returncode == 1 and replaced.stderr == (
        f'Error from server (Conflict): error when replacing "{stale}": Operation cannot be fulfilled on '
        'configmaps "page1": the object has been modified; please apply your changes to the latest version '
        'and try again\n')
    again = kubectl(server, "create", "-f", str(stale))
    assert again.returncode == 1 and again.stderr == \
        f'Error from server (AlreadyExists): error when creating "{stale}": configmaps "page1" already exists\n'
    invalid = kubectl(server, "create", "cm", "BAD_NAME")  # sent in protobuf
    assert invalid.returncode == 1 and invalid.stderr.startswith(
        'error: failed to create configmap: ConfigMap "BAD_NAME" is invalid: metadata.name: Invalid value: '
        '"BAD_NAME": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters')


def test_a_custom_resource_definition_serves_its_kind(server):
    assert kubectl(server, "apply", "-f", "-", input=CRD).stdout == \
        "customresourcedefinition.apiextensions.k8s.io/crontabs.stable.example.com created\n"
    nightly = 'apiVersion: stable.example.com/v1\nkind: CronTab\nmetadata: {name: nightly}\n' \
        'spec: {cronSpec: "0 0 * * *", replicas: 2}\n'
    assert kubectl(server, "apply", "-f", "-", input=nightly).stdout == "crontab.stable.example.com/nightly created\n"
    assert kubectl(server, "get", "ct").stdout.split()[:3] == ["NAME", "AGE", "nightly"]
    assert kubectl(server, "get", "crontabs", "nightly", "-o", "jsonpath={.spec.replicas}").stdout == "2"
    bad = kubectl(server, "apply", "-f", "-", input=nightly.replace("replicas: 2", "replicas: two"))
    assert bad.returncode == 1 and bad.stderr == (
        'The CronTab "nightly" is invalid: spec.replicas: Invalid value: "string": spec.replicas in body must be '
        'of type integer: "string"\n')
    assert kubectl(server, "delete", "crd", "crontabs.stable.example.com").stdout == \
        'customresourcedefinition.apiextensions.k8s.io "crontabs.stable.example.com" deleted\n'
    gone = kubectl(server, "get", "ct")
    assert gone.returncode == 1
