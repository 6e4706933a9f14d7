from raftkv.cli.main import cli

cli(prog_name="raftkv")
