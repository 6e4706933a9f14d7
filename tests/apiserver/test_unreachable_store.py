"""`raftkv apiserver` over a store nobody answers for: it says which one and exits."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request

import pytest
from apiserver_helpers import apiserver

from raftkv.cluster.local import LocalCluster, free_ports

pytestmark = pytest.mark.timeout(90)


def test_the_error_names_the_etcd_servers_it_tried():
    store_port, api_port = free_ports(2)  # nothing listens on either
    done = subprocess.run([sys.executable, "-m", "raftkv", "apiserver", "--etcd-servers",
                           f"http://127.0.0.1:{store_port}", "--secure-port", str(api_port)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == \
        f"Error: no member of the store reachable at http://127.0.0.1:{store_port} (--etcd-servers)"


def test_a_store_lost_while_serving_gives_an_internal_error_status(tmp_path):
    cluster = LocalCluster(size=1, base_dir=str(tmp_path / "member"))
    try:
        cluster.start(timeout=60)
        with apiserver(tmp_path, "--etcd-servers", cluster.endpoints[0]) as url:
            cluster.kill(0)
            with pytest.raises(urllib.error.HTTPError) as failed:
                urllib.request.urlopen(url + "/api/v1/namespaces/default/configmaps", timeout=60)
            status = json.loads(failed.value.read())
    finally:
        cluster.stop()
    assert failed.value.code == 500
    assert (status["kind"], status["status"], status["reason"], status["code"]) == \
        ("Status", "Failure", "InternalError", 500)
    assert status["message"].startswith("an error on the server (")
