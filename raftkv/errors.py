"""Typed exceptions carrying etcd's exact error messages.

Each exception's ``str()`` is the message etcd 3.4 returns over gRPC, and
``grpc_code`` names the status code it uses, so the gRPC layer can map one to
the other without a table of its own.
"""

from __future__ import annotations


class RaftKVError(Exception):
    """Base class of every error raised by raftkv."""

    message = "raftkv: error"
    grpc_code = "UNKNOWN"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.message)


class InvalidArgument(RaftKVError):
    grpc_code = "INVALID_ARGUMENT"


class EmptyKey(InvalidArgument):
    message = "etcdserver: key is not provided"


class KeyNotFound(InvalidArgument):
    message = "etcdserver: key not found"


class ValueProvided(InvalidArgument):
    message = "etcdserver: value is provided"


class LeaseProvided(InvalidArgument):
    message = "etcdserver: lease is provided"


class TooManyOps(InvalidArgument):
    message = "etcdserver: too many operations in txn request"


class DuplicateKey(InvalidArgument):
    message = "etcdserver: duplicate key given in txn request"


class RequestTooLarge(InvalidArgument):
    message = "etcdserver: request is too large"


class Compacted(RaftKVError):
    message = "etcdserver: mvcc: required revision has been compacted"
    grpc_code = "OUT_OF_RANGE"


class FutureRevision(RaftKVError):
    message = "etcdserver: mvcc: required revision is a future revision"
    grpc_code = "OUT_OF_RANGE"


class LeaseNotFound(RaftKVError):
    message = "etcdserver: requested lease not found"
    grpc_code = "NOT_FOUND"


class LeaseExists(RaftKVError):
    message = "etcdserver: lease already exists"
    grpc_code = "FAILED_PRECONDITION"


class LeaseTTLTooLarge(RaftKVError):
    message = "etcdserver: too large lease TTL"
    grpc_code = "OUT_OF_RANGE"


class WatchCanceled(RaftKVError):
    message = "etcdserver: watch canceled"
    grpc_code = "CANCELED"


class StoreClosed(RaftKVError):
    message = "etcdserver: server stopped"
    grpc_code = "UNAVAILABLE"


class Unavailable(RaftKVError):
    grpc_code = "UNAVAILABLE"


class NoLeader(Unavailable):
    message = "etcdserver: no leader"


class LeaderChanged(Unavailable):
    message = "etcdserver: leader changed"


class RequestTimedOut(Unavailable):
    message = "etcdserver: request timed out"


class NoSpace(RaftKVError):
    message = "etcdserver: mvcc: database space exceeded"
    grpc_code = "RESOURCE_EXHAUSTED"


class TooManyRequests(RaftKVError):
    message = "etcdserver: too many requests"
    grpc_code = "RESOURCE_EXHAUSTED"


class Unhealthy(Unavailable):
    message = "etcdserver: unhealthy cluster"


class NotEnoughStartedMembers(RaftKVError):
    """A membership change that would leave fewer started members than a quorum
    (etcd's --strict-reconfig-check)."""

    message = "etcdserver: re-configuration failed due to not enough started members"
    grpc_code = "FAILED_PRECONDITION"


class MemberNotFound(RaftKVError):
    message = "etcdserver: member not found"
    grpc_code = "NOT_FOUND"


class PeerURLExists(RaftKVError):
    message = "etcdserver: Peer URLs already exists"
    grpc_code = "FAILED_PRECONDITION"


class MemberBadURLs(InvalidArgument):
    message = "etcdserver: given member URLs are invalid"


class NotSupported(RaftKVError):
    """Something etcd offers that raftkv's Raft engine cannot do."""

    grpc_code = "UNIMPLEMENTED"


class NotLeader(RaftKVError):
    message = "etcdserver: not leader"
    grpc_code = "FAILED_PRECONDITION"


class BadLeaderTransferee(RaftKVError):
    message = "etcdserver: bad leader transferee"
    grpc_code = "FAILED_PRECONDITION"


class LeaderTransferTimedOut(RaftKVError):
    # etcd has no gRPC code for it and lets gRPC call it Unknown
    message = "etcdserver: request timed out, leader transfer took too long"
    grpc_code = "UNKNOWN"


class NotSupportedForLearner(Unavailable):
    message = "etcdserver: rpc not supported for learner"


class MemberNotLearner(RaftKVError):
    message = "etcdserver: can only promote a learner member"
    grpc_code = "FAILED_PRECONDITION"


class LearnerNotReady(RaftKVError):
    message = "etcdserver: can only promote a learner member which is in sync with leader"
    grpc_code = "FAILED_PRECONDITION"
