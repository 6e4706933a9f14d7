"""Field selectors: Kubernetes' grammar and escaping."""

from __future__ import annotations

import pytest

from raftkv.objects import FieldSelectorParseError, parse_field_selector
from raftkv.objects.fields import as_field_selector, escape_value

OBJ = {"metadata": {"name": "web-1", "namespace": "prod"},
       "spec": {"replicas": 3, "paused": False, "nodeName": "a=b,c"},
       "status": {"phase": "Running"}}


@pytest.mark.parametrize("selector, expected", [
    ("", True),
    ("metadata.name=web-1", True),
    ("metadata.name==web-1", True),
    ("metadata.name!=web-1", False),
    ("metadata.name=web-2", False),
    ("metadata.namespace=prod,status.phase=Running", True),
    ("metadata.namespace=prod,status.phase!=Running", False),
    ("spec.replicas=3", True),
    ("spec.paused=false", True),
    ("status.reason=", True),  # missing reads as ""
    ("status.reason!=x", True),
    ("spec.nodeName=a\\=b\\,c", True),  # escaped = and ,
    ("metadata=x", False),  # an object is not selectable
    ("metadata!=x", True),
])
def test_matching(selector, expected):
    assert parse_field_selector(selector).matches(OBJ) is expected


@pytest.mark.parametrize("selector, message", [
    ("metadata.name", "can't understand 'metadata.name'"),
    ("=x", "can't understand '=x'"),
    ("metadata.name=a=b", "unescaped character in value: ="),
    ("metadata.name=a\\x", "invalid escape sequence: \\x"),
    ("metadata.name=a\\", "invalid escape sequence: \\"),
])
def test_errors(selector, message):
    with pytest.raises(FieldSelectorParseError, match=message.replace("\\", "\\\\")):
        parse_field_selector(selector)


def test_round_trip_and_forms():
    sel = parse_field_selector("spec.nodeName=a\\=b\\,c,metadata.name!=x")
    assert parse_field_selector(str(sel)) == sel
    assert escape_value("a,b=c\\") == "a\\,b\\=c\\\\"
    assert as_field_selector({"metadata.name": "web-1"}).matches(OBJ)
    assert as_field_selector(None).empty
    assert sel.requires("spec.nodeName") == "a=b,c" and sel.requires("metadata.name") is None
