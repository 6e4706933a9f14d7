"""python -m examples.controllers --server http://127.0.0.1:6443 [--nodes node-1,node-2]"""

from __future__ import annotations

import argparse
import logging
import signal
import threading

from kubernetes import client

from examples.controllers.deployment import DeploymentController
from examples.controllers.endpoints import EndpointsController
from examples.controllers.nodes import NodeAgents
from examples.controllers.replicaset import ReplicaSetController
from examples.controllers.scheduler import Scheduler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", default="http://127.0.0.1:6443")
    parser.add_argument("--nodes", default="node-1,node-2",
                        help="Nodes to register and stand in for (empty: none).")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    config = client.Configuration()
    config.host = args.server
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    controllers = [kind(client.ApiClient(config), stop)
                   for kind in (DeploymentController, ReplicaSetController, Scheduler, EndpointsController)]
    names = [n for n in args.nodes.split(",") if n]
    if names:
        controllers.append(NodeAgents(client.ApiClient(config), names, stop))
    for controller in controllers:
        controller.start()
    try:
        stop.wait()
    except KeyboardInterrupt:
        stop.set()


if __name__ == "__main__":
    main()
