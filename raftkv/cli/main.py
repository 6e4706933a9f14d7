"""``raftkv``: the command line. Today: an interactive embedded store."""

from __future__ import annotations

import code
import logging

import click

import raftkv

BANNER = """raftkv {version}: a single-member store in this process (nothing is written to disk).
`kv` is open. Try:
    kv.put("greeting", "hello")
    kv.get("greeting")
    kv.range("", prefix=True)
    kv.txn().if_(raftkv.version("greeting") > 0).then(raftkv.ops.put("seen", "yes")).commit()
    for event in kv.watch("greeting").events(): print(event)     # Ctrl-C stops
Ctrl-D leaves."""


@click.group()
@click.option("--log-level", default="WARNING", show_default=True,
              type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False))
def cli(log_level: str) -> None:
    """raftkv: an etcd-compatible key-value store."""
    logging.basicConfig(level=log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")


@cli.command()
def shell() -> None:
    """Open an embedded store and a Python console bound to it as `kv`.

    Example: raftkv shell
    """
    with raftkv.open() as kv:
        code.interact(banner=BANNER.format(version=raftkv.__version__),
                      local={"kv": kv, "raftkv": raftkv}, exitmsg="")
