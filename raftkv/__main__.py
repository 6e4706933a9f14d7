from raftkv.cli.main import cli

cli()
