"""Entry point: ``python -m bench <benchmark> [options]``."""

import click

from bench.abuse import abuse
from bench.apiserver import apiserver
from bench.cli import compare, fuzz, matrix, run
from bench.cluster import cluster_put
from bench.large import large
from bench.memory import memory
from bench.port_sharing import port_sharing
from bench.profile import profile
from bench.snapshot_stall import snapshot_stall
from bench.soak import soak
from bench.throughput import throughput


@click.group()
def main() -> None:
    """raftkv benchmarks. Numbers go to stdout as JSON, one object per run."""


main.add_command(memory)
main.add_command(cluster_put)
main.add_command(snapshot_stall)
main.add_command(run)
main.add_command(compare)
main.add_command(matrix)
main.add_command(fuzz)
main.add_command(soak)
main.add_command(abuse)
main.add_command(throughput)
main.add_command(port_sharing)
main.add_command(profile)
main.add_command(large)
main.add_command(apiserver)

if __name__ == "__main__":
    main()
