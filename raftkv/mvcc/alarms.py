"""Alarms: conditions a member raised through the log.

Every member applies the same alarm requests, so every member knows the
same alarms and refuses the same requests while one is raised (NOSPACE: the
writes that would grow the store).
"""

from __future__ import annotations

from raftkv.mvcc.requests import AlarmAction, AlarmMember, AlarmRequest, AlarmResponse, AlarmType


class AlarmTable:
    def __init__(self) -> None:
        self._raised: set[AlarmMember] = set()

    def raised(self, alarm: AlarmType = AlarmType.NONE) -> list[AlarmMember]:
        """The alarms of one kind (every kind for NONE), in a stable order."""
        found = (m for m in self._raised if alarm == AlarmType.NONE or m.alarm == alarm)
        return sorted(found, key=lambda m: (m.alarm, m.member_id))

    def is_raised(self, alarm: AlarmType) -> bool:
        return any(m.alarm == alarm for m in self._raised)

    def apply(self, request: AlarmRequest) -> AlarmResponse:
        """etcd's answers: GET lists; ACTIVATE and DEACTIVATE answer with the
        alarm they changed, or nothing when there was nothing to change."""
        if request.action == AlarmAction.GET:
            return AlarmResponse(self.raised(request.alarm))
        member = AlarmMember(request.member_id, request.alarm)
        if request.action == AlarmAction.ACTIVATE and request.alarm != AlarmType.NONE \
                and member not in self._raised:
            self._raised.add(member)
            return AlarmResponse([member])
        if request.action == AlarmAction.DEACTIVATE and member in self._raised:
            self._raised.discard(member)
            return AlarmResponse([member])
        return AlarmResponse()

    def snapshot(self) -> list[tuple[int, int]]:
        return [(m.member_id, int(m.alarm)) for m in self.raised()]

    def restore(self, alarms: object) -> None:
        self._raised = {AlarmMember(int(member_id), AlarmType(alarm)) for member_id, alarm in alarms}
