"""Connections to a raftkv store, all offering the same interface."""
