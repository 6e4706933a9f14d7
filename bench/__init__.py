"""raftkv's benchmarks. `python -m bench --help` lists them."""
