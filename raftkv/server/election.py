"""v3electionpb.Election: leader election as etcd serves it.

The candidates of election N are the keys under ``N/``, one per lease
(``N/<lease id in hex>``, holding the candidate's proposal); the leader is
the oldest. A LeaderKey (name, key, create revision, lease) identifies one
leadership: Proclaim and Resign act only while that key still exists with
that create revision.
"""

from __future__ import annotations

import logging

from raftkv._proto.v3electionpb import v3election_pb2, v3election_pb2_grpc
from raftkv.client import ops
from raftkv.errors import RaftKVError
from raftkv.mvcc.types import EventType, KeyValue
from raftkv.server.aio import Blocking
from raftkv.server.concurrency import (
    Caller,
    Canceled,
    RecipeError,
    first_created,
    next_response,
    owner_key,
    recipe_call,
    recipe_stream,
    session_lease,
    wait_deletes,
)
from raftkv.server.context import ServerContext
from raftkv.wire import _fill_header, kv_to_pb

log = logging.getLogger(__name__)


class ElectionNotLeader(RecipeError):
    message = "election: not leader"


class ElectionNoLeader(RecipeError):
    message = "election: no leader"


class MissingLeaderKey(RecipeError):
    message = '"leader" field must be provided'


class ElectionService(v3election_pb2_grpc.ElectionServicer):
    def __init__(self, ctx: ServerContext, recipes: Blocking) -> None:
        self._ctx = ctx
        self.recipes = recipes  # where the waiting happens (see recipe_call)

    def _header(self, out, revision: int) -> None:
        _fill_header(out, revision, self._ctx.header())

    # ---- campaigning -------------------------------------------------------------

    @recipe_call
    def Campaign(self, request, caller: Caller):
        kv = self._ctx.kv_for(caller.context)
        lease = session_lease(kv, request.lease)
        prefix = request.name + b"/"
        key = owner_key(prefix, lease)
        response = kv.execute(ops.txn(
            [ops.create_revision(key) == 0],
            [ops.put(key, request.value, lease=lease)],
            [ops.get(key)],
        ))
        revision = response.revision
        if not response.succeeded:
            # this lease already campaigns: keep its place, update its proposal
            existing = response.responses[0].kvs[0]
            revision = existing.create_revision
            if existing.value != request.value:
                try:
                    self._proclaim(kv, key, revision, lease, request.value)
                except RaftKVError:
                    self._resign(kv, key, revision)
                    raise
        try:
            wait_deletes(kv, prefix, revision - 1, caller)
        except Canceled:
            self._resign(kv, key, revision)
            raise
        out = v3election_pb2.CampaignResponse(leader=v3election_pb2.LeaderKey(
            name=request.name, key=key, rev=revision, lease=lease))
        self._header(out.header, response.revision)
        return out

    @recipe_call
    def Proclaim(self, request, caller: Caller):
        if not request.HasField("leader"):
            raise MissingLeaderKey()
        leader = request.leader
        revision = self._proclaim(self._ctx.kv_for(caller.context), leader.key, leader.rev, leader.lease,
                                  request.value)
        out = v3election_pb2.ProclaimResponse()
        self._header(out.header, revision)
        return out

    def _proclaim(self, kv, key: bytes, create_revision: int, lease: int, value: bytes) -> int:
        response = kv.execute(ops.txn(
            [ops.create_revision(key) == create_revision],
            [ops.put(key, value, lease=lease)],
            [],
        ))
        if not response.succeeded:
            raise ElectionNotLeader()
        return response.revision

    @recipe_call
    def Resign(self, request, caller: Caller):
        if not request.HasField("leader"):
            raise MissingLeaderKey()
        revision = self._resign(self._ctx.kv_for(caller.context), request.leader.key, request.leader.rev,
                                quiet=False)
        out = v3election_pb2.ResignResponse()
        self._header(out.header, revision)
        return out

    def _resign(self, kv, key: bytes, create_revision: int, quiet: bool = True) -> int:
        """Delete the leader key if it is still this leadership's; the revision read."""
        try:
            return kv.execute(ops.txn(
                [ops.create_revision(key) == create_revision], [ops.delete(key)], [],
            )).revision
        except RaftKVError as e:
            if not quiet:
                raise
            log.info("could not resign key=%r error=%s", key, e)
            return 0

    # ---- watching the leader ----------------------------------------------------

    @recipe_call
    def Leader(self, request, caller: Caller):
        response = self._ctx.kv_for(caller.context).execute(first_created(request.name + b"/"))
        if not response.kvs:
            raise ElectionNoLeader()
        return self._leader_response(response.revision, response.kvs[0])

    def _leader_response(self, revision: int, kv: KeyValue):
        out = v3election_pb2.LeaderResponse(kv=kv_to_pb(kv))
        self._header(out.header, revision)
        return out

    @recipe_stream
    def Observe(self, request, caller: Caller):
        """Every leader's proposals in order: the current leader's value, its
        updates, and when its key goes, the next leader's."""
        kv = self._ctx.kv_for(caller.context)
        prefix = request.name + b"/"
        try:
            while caller.active:
                response = kv.execute(first_created(prefix))
                if response.kvs:
                    leader, revision = response.kvs[0], response.revision
                else:
                    # nobody campaigns: wait for the first candidate
                    leader = None
                    with kv.watch(prefix, prefix=True, start_revision=response.revision) as watch:
                        while leader is None:
                            batch = next_response(watch, caller)
                            if batch is None or batch.canceled:
                                return
                            leader = next((e.kv for e in batch.events
                                           if e.type == EventType.PUT), None)
                    revision = leader.mod_revision
                yield self._leader_response(revision, leader)
                with kv.watch(leader.key, start_revision=revision + 1) as watch:
                    resigned = False
                    while not resigned:
                        batch = next_response(watch, caller)
                        if batch is None or batch.canceled:
                            return
                        for event in batch.events:
                            if event.type == EventType.DELETE:
                                resigned = True
                                break
                            yield self._leader_response(batch.revision, event.kv)
        except Canceled:
            return
        except RaftKVError as e:
            # etcd ends the stream quietly when its observer loses the store
            log.info("observe ended name=%r error=%s", request.name, e)
            return
