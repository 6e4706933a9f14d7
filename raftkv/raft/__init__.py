"""Replication: the MVCC state machine carried by a hardened pysyncobj Raft log."""
