"""The README's first hour with a cluster: the example controllers run a
Deployment behind ``raftkv apiserver``, driven by real kubectl; and they
keep it through kill -9 of a member of a three-member raftkv cluster."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from raftkv.cluster.local import LocalCluster

from apiserver_helpers import REPO, apiserver, running

pytest.importorskip("kubernetes")
pytestmark = [pytest.mark.timeout(300), pytest.mark.skipif(shutil.which("kubectl") is None,
                                                            reason="kubectl is not installed")]
APP = str(REPO / "examples" / "app.yaml")
POD_NAME = re.compile(r"^web-[a-z0-9]{10}-[a-z0-9]{5}$")


def kubectl(url: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["kubectl", "--server", url, *args], capture_output=True, text=True, timeout=60,
                          check=False)


def wait_for(check: Callable[[], bool], what: str, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)


def web_pods(url: str) -> list[dict]:
    listed = kubectl(url, "get", "pods", "-l", "app=web", "-o", "json")
    return json.loads(listed.stdout)["items"] if listed.returncode == 0 else []


def running_pods(url: str, count: int) -> Callable[[], bool]:
    def check() -> bool:
        pods = web_pods(url)
        return len(pods) == count and all(p.get("status", {}).get("phase") == "Running" and
                                          not p["metadata"].get("deletionTimestamp") for p in pods)
    return check


@pytest.fixture
def controllers(tmp_path: Path):
    def start(url: str):
        return running(["--server", url, "--nodes", "node-1,node-2"], tmp_path / "controllers.log",
                       module="examples.controllers")
    return start


def test_the_first_hour(tmp_path, controllers):
    with apiserver(tmp_path) as url, controllers(url):
        assert kubectl(url, "apply", "-f", APP).stdout.splitlines() == ["deployment.apps/web created",
                                                                        "service/web created"]
        wait_for(lambda: kubectl(url, "get", "nodes", "-o", "name").stdout == "node/node-1\nnode/node-2\n",
                 "the nodes")
        wait_for(running_pods(url, 3), "three running pods")
        pods = web_pods(url)
        assert all(POD_NAME.match(p["metadata"]["name"]) for p in pods), [p["metadata"]["name"] for p in pods]
        assert {p["spec"]["nodeName"] for p in pods} == {"node-1", "node-2"}  # spread over both
        wait_for(lambda: kubectl(url, "get", "deploy", "web", "-o", "jsonpath={.status.readyReplicas}").stdout
                 == "3", "the deployment's status")
        deploy = kubectl(url, "get", "deploy").stdout.splitlines()
        assert deploy[1].split()[:4] == ["web", "3/3", "3", "3"]
        wide = kubectl(url, "get", "pods", "-o", "wide").stdout.splitlines()
        assert wide[0].split()[:7] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE", "IP", "NODE"]
        assert all(row.split()[1:3] == ["1/1", "Running"] for row in wide[1:])
        services = [row.split() for row in kubectl(url, "get", "svc").stdout.splitlines()[1:]]
        assert services[0][:5] == ["kubernetes", "ClusterIP", "10.0.0.1", "<none>", "443/TCP"]
        assert services[1][:2] == ["web", "NodePort"] and re.fullmatch(r"80:3\d{4}/TCP", services[1][4])
        ips = sorted(f"{p['status']['podIP']}:80" for p in pods)

        def described_endpoints() -> list[str]:
            lines = kubectl(url, "describe", "service/web").stdout.splitlines()
            found = [line.split(None, 1)[1] for line in lines if line.startswith("Endpoints:")]
            return sorted(found[0].split(",")) if found else []
        wait_for(lambda: described_endpoints() == ips, "the service's endpoints")

        assert kubectl(url, "scale", "--replicas=5", "deployment/web").stdout == "deployment.apps/web scaled\n"
        wait_for(running_pods(url, 5), "five running pods")
        victim = web_pods(url)[0]["metadata"]["name"]
        assert kubectl(url, "delete", "pod", victim).stdout == f'pod "{victim}" deleted\n'
        wait_for(lambda: running_pods(url, 5)() and victim not in {p["metadata"]["name"] for p in web_pods(url)},
                 "the deleted pod's replacement")


def test_the_deployment_survives_kill_9_of_a_member(tmp_path, controllers):
    cluster = LocalCluster(size=3, base_dir=str(tmp_path / "cluster"))
    try:
        cluster.start(timeout=60)
        store = ["--etcd-servers", ",".join(cluster.endpoints)]
        with apiserver(tmp_path, *store) as url, controllers(url):
            kubectl(url, "apply", "-f", APP)
            wait_for(running_pods(url, 3), "three running pods")
            before = {p["metadata"]["name"] for p in web_pods(url)}
            cluster.kill(cluster.leader_index())
            wait_for(lambda: kubectl(url, "scale", "--replicas=5", "deployment/web").returncode == 0,
                     "the scale, while the cluster elects a leader")
            wait_for(running_pods(url, 5), "five running pods without the killed member", timeout=120)
            after = {p["metadata"]["name"] for p in web_pods(url)}
            assert before <= after  # none lost
            replica_sets = json.loads(kubectl(url, "get", "rs", "-o", "json").stdout)["items"]
            assert [rs["spec"]["replicas"] for rs in replica_sets] == [5]
            time.sleep(3)  # a controller that duplicated pods would have made more by now
            assert len(web_pods(url)) == 5
    finally:
        cluster.stop()
