"""Merge patch (RFC 7386), its inverse, and apply's three-way merge."""

from __future__ import annotations

import pytest

from raftkv.objects import create_merge_patch, merge_patch
from raftkv.objects.patch import three_way_merge

# RFC 7386, Appendix A
RFC_EXAMPLES = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize("target, patch, expected", RFC_EXAMPLES)
def test_rfc7386_examples(target, patch, expected):
    assert merge_patch(target, patch) == expected


def test_merge_patch_does_not_modify_its_inputs():
    target = {"a": {"b": 1}}
    patch = {"a": {"c": 2}}
    merge_patch(target, patch)
    assert target == {"a": {"b": 1}} and patch == {"a": {"c": 2}}


@pytest.mark.parametrize("source, target", [
    ({"a": 1, "b": {"c": 2, "d": 3}}, {"a": 1, "b": {"c": 4}, "e": [1]}),
    ({"a": [1, 2]}, {"a": [2]}),
    ({}, {"x": {"y": "z"}}),
])
def test_create_merge_patch_is_the_inverse(source, target):
    patch = create_merge_patch(source, target)
    assert merge_patch(source, patch) == target


def test_three_way_merge():
    live = {"spec": {"replicas": 9, "paused": True, "image": "a"}, "status": {"ready": 1}}
    last = {"spec": {"replicas": 3, "paused": True}}
    desired = {"spec": {"replicas": 3, "image": "b"}}
    merged = three_way_merge(live, last, desired)
    # paused: dropped from the manifest; replicas: reverted; image: taken over; status: not ours
    assert merged == {"spec": {"replicas": 3, "image": "b"}, "status": {"ready": 1}}
    assert three_way_merge(live, None, {"spec": {"x": None}}) == live
