"""Real kubectl against ``raftkv apiserver --embedded``: discovery, apply,
get with selectors and server-side tables, label, patch, errors, delete."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request

import pytest

from raftkv.addresses import free_ports

pytestmark = [pytest.mark.timeout(120), pytest.mark.skipif(shutil.which("kubectl") is None,
                                                            reason="kubectl is not installed")]
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    (port,) = free_ports(1)
    data = tmp_path_factory.mktemp("apiserver")
    log = open(data / "apiserver.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "raftkv", "apiserver", "--embedded", str(data / "store"),
                             "--secure-port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(url + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, (data / "apiserver.log").read_text()
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


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
    assert kubectl(server, "delete", "-f", app).stdout.splitlines() == [
        'deployment.apps "web" deleted', 'service "web" deleted']


def test_discovery(server):
    resources = kubectl(server, "api-resources", "--no-headers").stdout
    assert any(line.split()[0] == "deployments" for line in resources.splitlines())
    assert "Server Version: v1.32.0-raftkv" in kubectl(server, "version").stdout
