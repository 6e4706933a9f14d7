"""Entry point: ``python -m bench <benchmark> [options]``."""

import click

from bench.cluster import cluster_put
from bench.memory import memory


@click.group()
def main() -> None:
    """raftkv benchmarks. Numbers go to stdout as JSON, one object per run."""


main.add_command(memory)
main.add_command(cluster_put)

if __name__ == "__main__":
    main()
