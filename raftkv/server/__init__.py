"""The etcd v3 gRPC API over any raftkv connection."""
