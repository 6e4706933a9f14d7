"""AlarmTable: the alarms raised through the log, answered as etcd's alarm store answers."""

from __future__ import annotations

from raftkv.mvcc.alarms import AlarmTable
from raftkv.mvcc.requests import AlarmAction, AlarmMember, AlarmRequest, AlarmType

ACTIVATE, DEACTIVATE, GET = AlarmAction.ACTIVATE, AlarmAction.DEACTIVATE, AlarmAction.GET
NOSPACE, CORRUPT, NONE = AlarmType.NOSPACE, AlarmType.CORRUPT, AlarmType.NONE


def test_activate_answers_with_the_alarm_once():
    table = AlarmTable()
    assert table.apply(AlarmRequest(ACTIVATE, 7, NOSPACE)).alarms == [AlarmMember(7, NOSPACE)]
    assert table.apply(AlarmRequest(ACTIVATE, 7, NOSPACE)).alarms == []  # already raised
    assert table.is_raised(NOSPACE) and not table.is_raised(CORRUPT)


def test_get_lists_one_kind_or_every_kind():
    table = AlarmTable()
    for member, kind in ((9, NOSPACE), (3, NOSPACE), (5, CORRUPT)):
        table.apply(AlarmRequest(ACTIVATE, member, kind))
    assert table.apply(AlarmRequest(GET, 0, NONE)).alarms == [
        AlarmMember(3, NOSPACE), AlarmMember(9, NOSPACE), AlarmMember(5, CORRUPT)]
    assert table.apply(AlarmRequest(GET, 0, CORRUPT)).alarms == [AlarmMember(5, CORRUPT)]


def test_deactivate_clears_only_the_member_and_kind_named():
    table = AlarmTable()
    table.apply(AlarmRequest(ACTIVATE, 1, NOSPACE))
    table.apply(AlarmRequest(ACTIVATE, 2, NOSPACE))
    assert table.apply(AlarmRequest(DEACTIVATE, 1, CORRUPT)).alarms == []
    assert table.apply(AlarmRequest(DEACTIVATE, 1, NOSPACE)).alarms == [AlarmMember(1, NOSPACE)]
    assert table.is_raised(NOSPACE)  # member 2's is still up
    table.apply(AlarmRequest(DEACTIVATE, 2, NOSPACE))
    assert not table.is_raised(NOSPACE) and table.raised() == []


def test_activating_no_kind_raises_nothing():
    table = AlarmTable()
    assert table.apply(AlarmRequest(ACTIVATE, 1, NONE)).alarms == []
    assert table.raised() == []


def test_snapshot_and_restore():
    table = AlarmTable()
    table.apply(AlarmRequest(ACTIVATE, 2**64 - 1, NOSPACE))
    copy = AlarmTable()
    copy.restore(table.snapshot())
    assert copy.raised() == [AlarmMember(2**64 - 1, NOSPACE)]


def test_printed_as_etcd_prints_an_alarm_member():
    assert str(AlarmMember(10276657743932975437, NOSPACE)) == "memberID:10276657743932975437 alarm:NOSPACE "
