"""--etcd-prefix: the apiserver keeps its objects (and what it indexes)
under another prefix of a real raftkv member, as kube-apiserver does."""

from __future__ import annotations

import subprocess
import sys

import pytest
from apiserver_helpers import apiserver

from raftkv.cluster.local import LocalCluster

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def test_objects_live_under_the_prefix(tmp_path):
    cluster = LocalCluster(size=1, base_dir=str(tmp_path / "member"))
    try:
        cluster.start(timeout=60)
        with apiserver(tmp_path, "--etcd-servers", cluster.endpoints[0], "--etcd-prefix", "/tenant-a") as url:
            config = client.Configuration()
            config.host = url
            core = client.CoreV1Api(client.ApiClient(config))
            core.create_namespaced_config_map("default", client.V1ConfigMap(
                metadata=client.V1ObjectMeta(name="settings"), data={"a": "1"}))
            assert core.read_namespaced_config_map("settings", "default").data == {"a": "1"}
        with cluster.client() as kv:
            assert kv.get("/tenant-a/configmaps/default/settings") is not None
            assert kv.get("/tenant-a/services/default/kubernetes") is not None
            assert kv.get("/tenant-a-index/allocations/clusterips/10.0.0.1").value == \
                b"/tenant-a/services/default/kubernetes"
            assert kv.range("/registry", prefix=True).count == 0
    finally:
        cluster.stop()


def test_a_malformed_prefix_is_refused():
    result = subprocess.run([sys.executable, "-m", "raftkv", "apiserver", "--etcd-prefix", "registry/"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "--etcd-prefix: a key prefix starts with / and does not end with one: 'registry/'" in result.stderr
