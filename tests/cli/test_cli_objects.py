"""raftkv obj: apply, create, get, delete, describe, label, api-resources,
in kubectl's habits, against a real single member."""

from __future__ import annotations

import ipaddress
import json
import uuid

import pytest
import yaml

from cli_helpers import Background

APP = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {{app: web, tier: frontend}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: web}}
  template:
    metadata:
      labels: {{app: web}}
    spec:
      containers:
        - name: web
          image: nginx:1.25
---
apiVersion: v1
kind: Service
metadata:
  name: web
  labels: {{app: web}}
spec:
  selector: {{app: web}}
  ports:
    - port: 80
      targetPort: 8080
"""


@pytest.fixture
def ns(kv):
    """A namespace of this test's own."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    kv("obj", "create", "-f", "-", input=f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n").ok()
    return name


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_apply_creates_then_reports_unchanged_then_configured(kv, ns, tmp_path):
    app = write(tmp_path, "app.yaml", APP.format(replicas=3))
    assert kv("obj", "apply", "-f", app, "-n", ns).ok().lines == [
        "deployment.apps/web created", "service/web created"]
    assert kv("obj", "apply", "-f", app, "-n", ns).ok().lines == [
        "deployment.apps/web unchanged", "service/web unchanged"]
    write(tmp_path, "app.yaml", APP.format(replicas=5))
    assert kv("obj", "apply", "-f", app, "-n", ns).ok().lines == [
        "deployment.apps/web configured", "service/web unchanged"]
    got = json.loads(kv("obj", "get", "deploy", "web", "-n", ns, "-o", "json").ok().out)
    assert got["spec"]["replicas"] == 5 and got["kind"] == "Deployment"


def test_apply_a_directory_and_stdin(kv, ns, tmp_path):
    folder = tmp_path / "manifests"
    folder.mkdir()
    for i in range(3):
        (folder / f"cm{i}.yaml").write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm{i}\n"
                                            f"data:\n  k: v{i}\n")
    (folder / "notes.txt").write_text("ignored")
    assert kv("obj", "apply", "-f", str(folder), "-n", ns).ok().lines == [
        f"configmap/cm{i} created" for i in range(3)]
    doc = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "from-stdin"}})
    assert kv("obj", "apply", "-f", "-", "-n", ns, input=doc).ok().out == "configmap/from-stdin created\n"
    assert kv("obj", "apply", "-f", "-", "-n", ns, "--dry-run",
              input=doc.replace("from-stdin", "dry")).ok().out == "configmap/dry created (dry run)\n"
    assert kv("obj", "get", "cm", "-n", ns, "-o", "name").ok().lines == [
        "configmap/cm0", "configmap/cm1", "configmap/cm2", "configmap/from-stdin"]


def test_create_reports_existing_objects_and_goes_on(kv, ns, tmp_path):
    one = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\n"
    kv("obj", "create", "-f", "-", "-n", ns, input=one.format("first")).ok()
    result = kv("obj", "create", "-f", "-", "-n", ns, input=one.format("first") + "---\n" + one.format("second"))
    assert result.code == 1
    assert result.out == "configmap/second created\n"
    assert result.err == ('Error from server (AlreadyExists): error when creating "STDIN": '
                          'configmaps "first" already exists\n')


def test_get_tables(kv, ns, tmp_path):
    kv("obj", "apply", "-f", write(tmp_path, "app.yaml", APP.format(replicas=3)), "-n", ns).ok()
    deploy = kv("obj", "get", "deployments", "-n", ns).ok().lines
    assert deploy[0].split() == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert deploy[1].split()[:4] == ["web", "0/3", "0", "0"]
    svc = kv("obj", "get", "svc", "-n", ns, "-o", "wide").ok().lines
    assert svc[0].split() == ["NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE", "SELECTOR"]
    name, type_, cluster_ip, external_ip, ports = svc[1].split()[:5]
    assert (name, type_, external_ip, ports) == ("web", "ClusterIP", "<none>", "80/TCP")
    assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network("10.0.0.0/24")  # given by the store
    assert svc[0].index("TYPE") == svc[1].index("ClusterIP")  # aligned columns
    both = kv("obj", "get", "deploy,svc", "-l", "app=web", "-n", ns).ok().out.split("\n\n")
    assert both[0].splitlines()[1].startswith("deployment.apps/web ")
    assert both[1].splitlines()[1].startswith("service/web ")
    labelled = kv("obj", "get", "deploy", "-n", ns, "--show-labels").ok().lines
    assert labelled[1].split()[-1] == "app=web,tier=frontend"
    every = kv("obj", "get", "deploy", "-A").ok().lines
    assert every[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(line.split()[:2] == [ns, "web"] for line in every[1:])


def test_get_selectors_and_outputs(kv, ns, tmp_path):
    kv("obj", "apply", "-f", write(tmp_path, "app.yaml", APP.format(replicas=1)), "-n", ns).ok()
    assert kv("obj", "get", "deploy", "-n", ns, "-l", "tier=frontend", "-o", "name").ok().out == \
        "deployment.apps/web\n"
    none = kv("obj", "get", "deploy", "-n", ns, "-l", "tier=backend")
    assert none.ok().out == "" and none.err == f"No resources found in {ns} namespace.\n"
    assert kv("obj", "get", "svc", "-n", ns, "--field-selector", "metadata.name=web",
              "-o", "name").ok().out == "service/web\n"
    one = yaml.safe_load(kv("obj", "get", "svc", "web", "-n", ns, "-o", "yaml").ok().out)
    assert one["kind"] == "Service" and one["metadata"]["namespace"] == ns
    listed = json.loads(kv("obj", "get", "svc", "-n", ns, "-o", "json").ok().out)
    assert listed["kind"] == "List" and [i["metadata"]["name"] for i in listed["items"]] == ["web"]


def test_get_errors_are_kubectls(kv, ns):
    missing = kv("obj", "get", "deploy", "nope", "-n", ns)
    assert missing.code == 1
    assert missing.err == 'Error from server (NotFound): deployments.apps "nope" not found\n'
    unknown = kv("obj", "get", "frobs")
    assert unknown.code == 1
    assert unknown.err == 'error: the server doesn\'t have a resource type "frobs"\n'
    bad = kv("obj", "get", "pods", "-l", "a in (", "-n", ns)
    assert bad.code == 1 and bad.err.startswith("Error from server (BadRequest): ")


def test_delete_by_name_manifest_and_selector(kv, ns, tmp_path):
    app = write(tmp_path, "app.yaml", APP.format(replicas=1))
    kv("obj", "apply", "-f", app, "-n", ns).ok()
    assert kv("obj", "delete", "svc", "web", "-n", ns).ok().out == 'service "web" deleted\n'
    gone = kv("obj", "delete", "svc", "web", "-n", ns)
    assert gone.code == 1 and gone.err == 'Error from server (NotFound): services "web" not found\n'
    assert kv("obj", "delete", "svc", "web", "-n", ns, "--ignore-not-found").ok().out == ""
    kv("obj", "apply", "-f", app, "-n", ns).ok()
    assert kv("obj", "delete", "-f", app, "-n", ns).ok().lines == [
        'deployment.apps "web" deleted', 'service "web" deleted']
    for i in range(2):
        kv("obj", "create", "-f", "-", "-n", ns, input=f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                                        f"  name: c{i}\n  labels: {{group: g}}\n").ok()
    assert kv("obj", "delete", "cm", "-l", "group=g", "-n", ns).ok().lines == [
        'configmap "c0" deleted', 'configmap "c1" deleted']
    assert kv("obj", "delete", "cm", "-n", ns).code == 2  # NAMES, -l or --all


def test_describe(kv, ns, tmp_path):
    kv("obj", "apply", "-f", write(tmp_path, "app.yaml", APP.format(replicas=2)), "-n", ns).ok()
    lines = kv("obj", "describe", "deploy", "web", "-n", ns).ok().lines
    assert lines[0].split() == ["Name:", "web"]
    assert lines[1].split() == ["Namespace:", ns]
    assert lines[2].split() == ["Labels:", "app=web"] and lines[3].strip() == "tier=frontend"
    assert lines[4].split() == ["Annotations:", "<none>"]  # last-applied is left out, as kubectl does
    assert "  Replicas:  2" in lines and "    Match Labels:" in lines
    assert lines[-1].split() == ["Events:", "<none>"]


def test_label_add_overwrite_remove(kv, ns, tmp_path):
    kv("obj", "apply", "-f", write(tmp_path, "app.yaml", APP.format(replicas=1)), "-n", ns).ok()
    assert kv("obj", "label", "deploy", "web", "canary=yes", "-n", ns).ok().out == "deployment.apps/web labeled\n"
    clash = kv("obj", "label", "deploy", "web", "tier=backend", "-n", ns)
    assert clash.code == 1
    assert clash.err == "error: 'tier' already has a value (frontend), and --overwrite is false\n"
    kv("obj", "label", "deploy", "web", "tier=backend", "--overwrite", "-n", ns).ok()
    kv("obj", "label", "deploy", "web", "canary-", "-n", ns).ok()
    assert kv("obj", "label", "deploy", "web", "canary-", "-n", ns).ok().out == \
        "deployment.apps/web not labeled\n"
    labels = json.loads(kv("obj", "get", "deploy", "web", "-n", ns, "-o", "json").ok().out)["metadata"]["labels"]
    assert labels == {"app": "web", "tier": "backend"}


def test_api_resources(kv):
    lines = kv("obj", "api-resources").ok().lines
    assert lines[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    assert rows["namespaces"] == ["namespaces", "ns", "v1", "false", "Namespace"]
    assert "services" in kv("obj", "api-resources", "-o", "name").ok().lines
    assert "namespaces" not in kv("obj", "api-resources", "--namespaced", "true", "-o", "name").ok().lines


def test_bad_manifests_are_one_line_errors(kv, tmp_path):
    broken = write(tmp_path, "broken.yaml", "kind: [unclosed\n")
    result = kv("obj", "apply", "-f", broken)
    assert result.code == 1 and result.err.startswith(f"Error: error parsing {broken}: ")
    missing = kv("obj", "apply", "-f", str(tmp_path / "none.yaml"))
    assert missing.code == 1 and "does not exist" in missing.err
    assert kv("obj", "apply").code == 2
    invalid = kv("obj", "apply", "-f", "-", input="apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Bad_Name\n")
    assert invalid.code == 1 and invalid.err.startswith("Error from server (Invalid): error when applying")


@pytest.mark.timeout(60)
def test_get_watch_prints_changes_until_ctrl_c(kv, ns):
    cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {}\ndata:\n  k: \"{}\"\n"
    kv("obj", "apply", "-f", "-", "-n", ns, input=cm.format("before", "1")).ok()
    with Background("obj", "get", "cm", "-n", ns, "--watch", endpoints=kv.endpoint) as w:
        w.wait_for(lambda: any(line.startswith("before") for line in w.out_lines), "the initial list")
        kv("obj", "apply", "-f", "-", "-n", ns, input=cm.format("after", "2")).ok()
        w.wait_for(lambda: any(line.startswith("after") for line in w.out_lines), "the new object")
        assert w.interrupt() == 0
    assert w.out_lines[0].split() == ["NAME", "DATA", "AGE"]
    assert "Traceback" not in w.err
