"""The object layer unchanged over a real cluster: a 3-member raftkv served
as processes, reached through raftkv.Client (etcd's gRPC API), with etcdctl
reading what the layer stored."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading

import pytest

from raftkv.cluster.local import LocalCluster
from raftkv.objects import Conflict, Encryptor, ObjectStore, retry_on_conflict

from .test_apply import APP_YAML

ETCDCTL = shutil.which("etcdctl")
PASSWORD = "s3cr3t-through-the-wire"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(size=3, base_dir=str(tmp_path_factory.mktemp("objects-cluster")))
    try:
        c.start(timeout=60)
        yield c
    finally:
        c.stop()


@pytest.fixture
def remote(cluster):
    client = cluster.client(timeout=10)
    try:
        yield client
    finally:
        client.close()


def etcdctl(cluster, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ETCDCTL, f"--endpoints={','.join(cluster.endpoints)}", *args],
                          capture_output=True, env={**os.environ, "ETCDCTL_API": "3"}, timeout=30)


@pytest.mark.timeout(120)
def test_quickstart_over_the_cluster(remote):
    store = ObjectStore(remote)
    assert [str(r) for r in store.apply(APP_YAML)] == ["deployment.apps/web created", "service/web created"]
    assert [str(r) for r in store.apply(APP_YAML)] == ["deployment.apps/web unchanged", "service/web unchanged"]
    assert store.list("deployments", label_selector="app=web").names == ["web"]
    raw = remote.get("/registry/deployments/default/web")
    assert json.loads(raw.value)["spec"]["replicas"] == 3
    assert store.get("deploy", "web")["metadata"]["resourceVersion"] == str(raw.mod_revision)


@pytest.mark.timeout(120)
def test_watch_paging_and_conflicts_over_the_cluster(cluster, remote):
    store = ObjectStore(remote)
    ns = "remote-" + os.urandom(3).hex()
    store.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    rv = store.list("configmaps", ns).resource_version
    with store.watch("configmaps", ns, label_selector="app=web", resource_version=rv) as w:
        for i in range(5):
            store.create({"apiVersion": "v1", "kind": "ConfigMap",
                          "metadata": {"name": f"c{i}", "namespace": ns, "labels": {"app": "web"}}})
        store.patch("configmaps", "c0", {"metadata": {"labels": {"app": "db"}}}, ns)
        events = [w.next(timeout=10) for _ in range(6)]
    assert [e.type for e in events] == ["ADDED"] * 5 + ["DELETED"]
    pages, token = [], None
    while True:
        page = store.list("configmaps", ns, limit=2, continue_token=token)
        pages.append(page.names)
        token = page.continue_token
        if not token:
            break
    assert pages == [["c0", "c1"], ["c2", "c3"], ["c4"]]

    other = ObjectStore(cluster.client(0, timeout=10))  # another member
    obj = store.get("configmaps", "c1", ns)
    stale = other.get("configmaps", "c1", ns)
    store.update(dict(obj, data={"k": "1"}))
    with pytest.raises(Conflict):
        other.update(dict(stale, data={"k": "2"}))
    other.kv.close()

    errors: list[BaseException] = []
    successes = []

    def incr() -> None:
        client = ObjectStore(cluster.client(timeout=10))
        try:
            for _ in range(5):
                def attempt():
                    o = client.get("configmaps", "c2", ns)
                    o["data"] = {"n": str(int((o.get("data") or {}).get("n", "0")) + 1)}
                    return client.update(o)
                retry_on_conflict(attempt, attempts=50, backoff=0.005)
                successes.append(1)
        except BaseException as e:
            errors.append(e)
        finally:
            client.kv.close()

    threads = [threading.Thread(target=incr) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert store.get("configmaps", "c2", ns)["data"]["n"] == str(len(successes)) == "15"
    store.delete("namespaces", ns)
    assert store.list("configmaps", ns).items == []


@pytest.mark.skipif(ETCDCTL is None, reason="etcdctl not installed (apt-get install etcd-client)")
@pytest.mark.timeout(120)
def test_etcdctl_sees_json_objects_and_only_ciphertext_for_secrets(cluster, remote):
    store = ObjectStore(remote, encryption_key=Encryptor.generate())
    name = "db-" + os.urandom(3).hex()
    created = store.create({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
                            "stringData": {"password": PASSWORD}})
    assert store.get("secrets", name)["data"] == created["data"]
    out = etcdctl(cluster, "get", f"/registry/secrets/default/{name}", "--print-value-only")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(b"k8s:enc:aesgcm:v1:key1:")
    assert PASSWORD.encode() not in out.stdout
    assert created["data"]["password"].encode() not in out.stdout
    store.create({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": {"a": "b"}})
    out = etcdctl(cluster, "get", f"/registry/configmaps/default/{name}", "--print-value-only")
    assert json.loads(out.stdout)["data"] == {"a": "b"}
    keys = etcdctl(cluster, "get", "/registry/", "--prefix", "--keys-only").stdout.decode().split()
    assert f"/registry/secrets/default/{name}" in keys and "/registry/namespaces/default" in keys
