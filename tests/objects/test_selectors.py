"""Label selectors checked against Kubernetes' documented semantics
(concepts/overview/working-with-objects/labels and the labels package)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from raftkv.objects import (
    BadRequest,
    LabelSelector,
    LabelSelectorRequirement,
    Operator,
    SelectorParseError,
    as_selector,
    parse_selector,
    selector_from_label_selector,
)

PROD_FRONT = {"environment": "production", "tier": "frontend"}
QA_BACK = {"environment": "qa", "tier": "backend"}
NO_ENV = {"tier": "frontend"}
EMPTY_ENV = {"environment": "", "partition": "customerA"}
NONE: dict[str, str] = {}

# (selector, labels, expected match)
MATCH_TABLE = [
    # the empty selector selects everything
    ("", PROD_FRONT, True),
    ("", NONE, True),
    # equality-based
    ("environment=production", PROD_FRONT, True),
    ("environment=production", QA_BACK, False),
    ("environment=production", NO_ENV, False),
    ("environment==production", PROD_FRONT, True),
    ("environment==production", QA_BACK, False),
    ("environment!=production", PROD_FRONT, False),
    ("environment!=production", QA_BACK, True),
    ("environment!=production", NO_ENV, True),  # a missing key satisfies !=
    ("environment!=production", NONE, True),
    ("tier!=frontend", EMPTY_ENV, True),
    ("environment=", EMPTY_ENV, True),  # an empty value equals the empty label value
    ("environment=", NO_ENV, False),  # ... but the key must exist
    ("environment=", PROD_FRONT, False),
    # set-based
    ("environment in (production, qa)", PROD_FRONT, True),
    ("environment in (production, qa)", QA_BACK, True),
    ("environment in (production, qa)", NO_ENV, False),
    ("environment in (production, qa)", EMPTY_ENV, False),
    ("tier notin (frontend, backend)", PROD_FRONT, False),
    ("tier notin (frontend, backend)", QA_BACK, False),
    ("tier notin (frontend, backend)", EMPTY_ENV, True),  # a missing key satisfies notin
    ("tier notin (frontend, backend)", NONE, True),
    ("environment notin (production)", EMPTY_ENV, True),
    ("environment in ()", EMPTY_ENV, True),  # "()" is the set holding "", as the parser reads it
    ("environment in ()", PROD_FRONT, False),
    ("environment in (,production)", PROD_FRONT, True),
    ("environment in (,production)", EMPTY_ENV, True),
    ("environment in (,production)", QA_BACK, False),
    ("environment in (qa,,production)", PROD_FRONT, True),
    ("environment in (qa,)", EMPTY_ENV, True),
    # exists / does not exist
    ("environment", PROD_FRONT, True),
    ("environment", EMPTY_ENV, True),  # an empty value still exists
    ("environment", NO_ENV, False),
    ("!environment", PROD_FRONT, False),
    ("!environment", NO_ENV, True),
    ("!environment", EMPTY_ENV, False),
    ("! environment", NO_ENV, True),
    # commas are AND
    ("environment=production,tier=frontend", PROD_FRONT, True),
    ("environment=production,tier=frontend", {"environment": "production"}, False),
    ("environment=production,tier!=frontend", PROD_FRONT, False),
    ("environment,environment notin (frontend)", PROD_FRONT, True),  # the docs' example
    ("environment,environment notin (frontend)", NO_ENV, False),
    ("partition in (customerA, customerB),environment!=qa", EMPTY_ENV, True),  # the docs' example
    ("partition in (customerA, customerB),environment!=qa", QA_BACK, False),
    ("!environment,tier", NO_ENV, True),
    ("!environment,tier", NONE, False),
    ("environment=production,environment=qa", PROD_FRONT, False),
    # free whitespace
    ("  environment  =  production  ,  tier in ( frontend )  ", PROD_FRONT, True),
    ("environment\tin\t(qa)", QA_BACK, True),
    ("environment notin(qa)", PROD_FRONT, True),
    # qualified keys and value characters
    ("app.kubernetes.io/name=web", {"app.kubernetes.io/name": "web"}, True),
    ("app.kubernetes.io/name=web", {"name": "web"}, False),
    ("version in (v1.2_3-rc, v2)", {"version": "v1.2_3-rc"}, True),
    ("Tier=Frontend", {"tier": "frontend"}, False),  # keys and values are case-sensitive
    # "in" and "notin" are ordinary words where a key or value is expected
    ("in in (in)", {"in": "in"}, True),
    ("notin notin (x)", {"notin": "y"}, True),
    ("notin notin (x)", {"notin": "x"}, False),
    ("k=in", {"k": "in"}, True),
    # integer comparisons
    ("replicas>5", {"replicas": "6"}, True),
    ("replicas>5", {"replicas": "5"}, False),
    ("replicas>5", {"replicas": "abc"}, False),
    ("replicas>5", NONE, False),  # a missing key never compares
    ("replicas<5", {"replicas": "4"}, True),
    ("replicas<5", {"replicas": "-1"}, True),
    ("replicas<5", {"replicas": "5"}, False),
    ("replicas>0", {"replicas": "+1"}, True),  # Go's ParseInt takes a sign
]


@pytest.mark.parametrize("selector, labels, expected", MATCH_TABLE)
def test_selector_table(selector, labels, expected):
    assert parse_selector(selector).matches(labels) is expected


@pytest.mark.parametrize("selector, labels, expected", MATCH_TABLE)
def test_string_form_round_trips(selector, labels, expected):
    parsed = parse_selector(selector)
    again = parse_selector(str(parsed))
    assert again == parsed
    assert again.matches(labels) is expected


# (selector, the message's distinctive part, position of the problem)
PARSE_ERRORS = [
    ("environment in production", "found 'production' expected: '('", 15),
    ("environment in (production", "found '', expected: ',' or ')'", 26),
    ("=production", "found '=', expected: !, identifier, or 'end of string'", 0),
    ("environment=production,", "found '', expected: identifier after ','", 23),
    ("environment=production,,tier", "found ',', expected: identifier after ','", 23),
    ("environment production", "found 'production', expected: =, !=, ==, in, notin, gt, lt", 12),
    ("!environment=production", "found '=', expected: ',' or 'end of string'", 12),
    ("a=b=c", "found '=', expected: ',' or 'end of string'", 3),
    ("a in (b c)", "found 'c', expected: ',' or ')'", 8),
    ("a in (b,=)", "found '=', expected: ',', or identifier", 8),
    ("a in (=)", "found '=', expected: ',', ')' or identifier", 6),
    ("a=(b)", "found '(', expected: identifier", 2),
    ("!", "found '', expected: identifier", 1),
    ("a notin", "found '' expected: '('", 7),
    ("replicas>abc", "the value must be an integer", 9),
    ("replicas>", "the value must be an integer", 9),
    ("replicas>-3", "invalid label value '-3'", 9),  # the operand must be a valid label value too
    ("-bad=x", "name part must consist of alphanumeric characters", 0),
    ("k/=v", "name part must be non-empty", 0),
    ("/k=v", "prefix part must be non-empty", 0),
    ("a/b/c=v", "a qualified name must consist of", 0),
    ("Example.com/k=v", "prefix part a lowercase RFC 1123 subdomain", 0),
    ("k" * 64 + "=v", "name part must be no more than 63 characters", 0),
    ("k=" + "v" * 64, "must be no more than 63 characters", 2),
    ("k=-v", "a valid label must be an empty string or consist of alphanumeric characters", 2),
    ("k in (a, b_)", "a valid label must be an empty string", 9),
]


@pytest.mark.parametrize("selector, message, position", PARSE_ERRORS)
def test_parse_errors_point_at_the_problem(selector, message, position):
    with pytest.raises(SelectorParseError) as info:
        parse_selector(selector)
    err = info.value
    assert message in str(err)
    assert err.position == position
    assert str(err).startswith("unable to parse requirement: ")
    assert err.pointer().splitlines()[1] == " " * position + "^"
    assert err.code == 400 and err.reason == "BadRequest"


def test_limits_are_inclusive():
    assert parse_selector("k" * 63 + "=" + "v" * 63).matches({"k" * 63: "v" * 63})
    prefix = ".".join(["a" * 63] * 4)[:253]
    assert parse_selector(f"{prefix}/k").matches({f"{prefix}/k": "x"})
    with pytest.raises(SelectorParseError, match="prefix part must be no more than 253 characters"):
        parse_selector(f"{prefix}b/k")


def test_requirements_are_sorted_and_deduplicated():
    sel = parse_selector("b in (y, x, y), a")
    assert [r.key for r in sel.requirements] == ["a", "b"]
    assert sel.requirements[1].values == ("x", "y")
    assert sel.requirements[1].operator is Operator.IN
    assert str(sel) == "a,b in (x,y)"


# ---- the LabelSelector object form ------------------------------------------------

OBJECT_TABLE = [
    ({"matchLabels": {"app": "web"}}, {"app": "web", "x": "y"}, True),
    ({"matchLabels": {"app": "web"}}, {"app": "db"}, False),
    ({"matchLabels": {"app": "web", "tier": "frontend"}}, {"app": "web"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend", "cache"]}]},
     {"tier": "cache"}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["frontend"]}]}, {}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["frontend"]}]}, {}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["frontend"]}]},
     {"tier": "frontend"}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {"tier": ""}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "Exists"}]}, {}, False),
    ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {}, True),
    ({"matchExpressions": [{"key": "tier", "operator": "DoesNotExist"}]}, {"tier": "x"}, False),
    # matchLabels AND matchExpressions
    ({"matchLabels": {"app": "web"},
      "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]},
     {"app": "web", "env": "prod"}, True),
    ({"matchLabels": {"app": "web"},
      "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]},
     {"app": "web", "env": "dev"}, False),
    ({"matchLabels": {"app": "web"},
      "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["dev"]}]},
     {"env": "prod"}, False),
    # an empty selector selects everything
    ({}, {"anything": "at-all"}, True),
    ({"matchLabels": {}, "matchExpressions": []}, {}, True),
]


@pytest.mark.parametrize("selector, labels, expected", OBJECT_TABLE)
def test_label_selector_objects(selector, labels, expected):
    assert selector_from_label_selector(selector).matches(labels) is expected
    as_object = LabelSelector.from_dict(selector)
    assert selector_from_label_selector(as_object).matches(labels) is expected
    assert LabelSelector.from_dict(as_object.to_dict()) == as_object


def test_a_nil_label_selector_selects_nothing():
    nothing = selector_from_label_selector(None)
    assert not nothing.matches({})
    assert not nothing.matches({"app": "web"})


def test_label_selector_dataclass_form():
    sel = LabelSelector(match_labels={"app": "web"},
                        match_expressions=[LabelSelectorRequirement("tier", "In", ["a", "b"])])
    assert sel.as_selector().matches({"app": "web", "tier": "b"})
    assert not sel.as_selector().matches({"app": "web", "tier": "c"})
    assert str(sel.as_selector()) == "app=web,tier in (a,b)"


@pytest.mark.parametrize("selector, message", [
    ({"matchExpressions": [{"key": "a", "operator": "Foo", "values": ["x"]}]},
     "'Foo' is not a valid label selector operator"),
    ({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
     "for 'in', 'notin' operators, values set can't be empty"),
    ({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]},
     "values set must be empty for exists and does not exist"),
    ({"matchLabels": {"bad key": "x"}}, "name part must consist of"),
    ({"matchLabels": {"k": "bad value"}}, "a valid label must be an empty string"),
])
def test_invalid_label_selector_objects(selector, message):
    with pytest.raises(BadRequest, match=message):
        selector_from_label_selector(selector)


def test_as_selector_accepts_every_form():
    labels = {"app": "web"}
    assert as_selector(None).matches({})
    assert as_selector("app=web").matches(labels)
    assert as_selector({"app": "web"}).matches(labels)  # a set of labels
    assert not as_selector({"app": "db"}).matches(labels)
    assert as_selector({"matchLabels": {"app": "web"}}).matches(labels)
    assert not as_selector({"matchLabels": {"app": "db"}}).matches(labels)
    sel = parse_selector("app")
    assert as_selector(sel) is sel
    with pytest.raises(BadRequest):
        as_selector(42)


# ---- the parser and matcher against a reference model -----------------------------

_KEYS = st.sampled_from(["a", "b", "app.kubernetes.io/name"])
_VALUES = st.sampled_from(["", "x", "y", "1", "12"])


@st.composite
def _requirement(draw):
    key = draw(_KEYS)
    op = draw(st.sampled_from(["=", "==", "!=", "in", "notin", "exists", "!", ">", "<"]))
    if op in ("in", "notin"):
        values = draw(st.lists(st.sampled_from(["x", "y", "1"]), min_size=1, max_size=3))
        return f"{key} {op} ({', '.join(values)})", (key, op, set(values))
    if op == "exists":
        return key, (key, op, None)
    if op == "!":
        return f"!{key}", (key, op, None)
    if op in (">", "<"):
        n = draw(st.integers(0, 20))
        return f"{key}{op}{n}", (key, op, n)
    value = draw(st.sampled_from(["x", "y", "1"]))
    return f"{key}{op}{value}", (key, op, {value})


def _reference(model, labels):
    key, op, operand = model
    if op in ("=", "==", "in"):
        return key in labels and labels[key] in operand
    if op in ("!=", "notin"):
        return key not in labels or labels[key] not in operand
    if op == "exists":
        return key in labels
    if op == "!":
        return key not in labels
    if key not in labels or not labels[key].lstrip("-").isdigit():
        return False
    return int(labels[key]) > operand if op == ">" else int(labels[key]) < operand


@given(st.lists(_requirement(), min_size=1, max_size=4), st.dictionaries(_KEYS, _VALUES, max_size=3))
def test_matches_the_reference_model(requirements, labels):
    text = ",".join(r[0] for r in requirements)
    expected = all(_reference(r[1], labels) for r in requirements)
    assert parse_selector(text).matches(labels) is expected
