"""Label selectors: Kubernetes' string grammar, the LabelSelector object form,
and matching with Kubernetes' semantics.

Grammar (k8s.io/apimachinery/pkg/labels)::

    selector    ::= "" | requirement ("," requirement)*
    requirement ::= ["!"] KEY [ set-restriction | exact-restriction ]
    set-restriction   ::= ("in" | "notin") "(" [VALUE] ("," [VALUE])* ")"
    exact-restriction ::= ("=" | "==" | "!=" | ">" | "<") [VALUE]

Whitespace is free between tokens; commas mean AND. ``k!=v`` and
``k notin (...)`` also match objects without ``k``; ``>`` and ``<`` compare
integers and never match a missing or non-integer value.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from raftkv.objects.errors import BadRequest
from raftkv.objects.validation import is_qualified_name, is_valid_label_value


class Operator(enum.StrEnum):
    IN = "in"
    NOT_IN = "notin"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    EXISTS = "exists"
    DOES_NOT_EXIST = "!"
    GREATER_THAN = "gt"
    LESS_THAN = "lt"


class SelectorParseError(BadRequest):
    """An invalid selector. ``position`` is the offset of the offending token
    in ``text``; ``pointer()`` shows it under the selector."""

    def __init__(self, detail: str, text: str, position: int) -> None:
        self.detail = detail
        self.text = text
        self.position = position
        super().__init__(f"unable to parse requirement: {detail} "
                         f"(at position {position} of {text!r})")

    def pointer(self) -> str:
        return f"{self.text}\n{' ' * self.position}^"


@dataclass(frozen=True)
class Requirement:
    key: str
    operator: Operator
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        op = self.operator
        has = self.key in labels
        if op in (Operator.IN, Operator.EQUALS, Operator.DOUBLE_EQUALS):
            return has and labels[self.key] in self.values
        if op in (Operator.NOT_IN, Operator.NOT_EQUALS):
            return not has or labels[self.key] not in self.values
        if op == Operator.EXISTS:
            return has
        if op == Operator.DOES_NOT_EXIST:
            return not has
        if not has:
            return False
        try:
            actual = _parse_int64(labels[self.key])
        except ValueError:
            return False
        wanted = int(self.values[0])
        return actual > wanted if op == Operator.GREATER_THAN else actual < wanted

    def __str__(self) -> str:
        op = self.operator
        if op == Operator.EXISTS:
            return self.key
        if op == Operator.DOES_NOT_EXIST:
            return "!" + self.key
        if op in (Operator.IN, Operator.NOT_IN):
            return f"{self.key} {op.value} ({','.join(self.values)})"
        symbol = {Operator.GREATER_THAN: ">", Operator.LESS_THAN: "<"}.get(op, op.value)
        return f"{self.key}{symbol}{self.values[0]}"


def _parse_int64(text: str) -> int:
    # Go's strconv.ParseInt(s, 10, 64): optional sign, decimal digits, no spaces or underscores
    body = text[1:] if text[:1] in "+-" else text
    if not body or not body.isascii() or not body.isdigit():
        raise ValueError(text)
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError(text)
    return value


def new_requirement(key: str, operator: Operator | str, values: Iterable[str] = ()) -> Requirement:
    """Build a checked requirement (k8s' ``labels.NewRequirement``); raises ValueError."""
    try:
        op = Operator(operator)
    except ValueError:
        raise ValueError(f"operator '{operator}' is not recognized") from None
    vals = list(values)
    problems = [f"invalid label key {key!r}: {m}" for m in is_qualified_name(key)]
    if problems:
        raise ValueError("; ".join(problems))
    if op in (Operator.IN, Operator.NOT_IN):
        if not vals:
            raise ValueError("for 'in', 'notin' operators, values set can't be empty")
    elif op in (Operator.EQUALS, Operator.DOUBLE_EQUALS, Operator.NOT_EQUALS):
        if len(vals) != 1:
            raise ValueError("exact-match compatibility requires one single value")
    elif op in (Operator.EXISTS, Operator.DOES_NOT_EXIST):
        if vals:
            raise ValueError("values set must be empty for exists and does not exist")
    else:
        if len(vals) != 1:
            raise ValueError("for 'Gt', 'Lt' operators, exactly one value is required")
        try:
            _parse_int64(vals[0])
        except ValueError:
            raise ValueError("for 'Gt', 'Lt' operators, the value must be an integer") from None
    for v in vals:
        if not isinstance(v, str):
            raise ValueError(f"invalid label value {v!r}: must be a string")
        msgs = is_valid_label_value(v)
        if msgs:
            raise ValueError(f"invalid label value {v!r}: " + "; ".join(msgs))
    return Requirement(key, op, tuple(sorted(set(vals))))


@dataclass(frozen=True)
class Selector:
    """A conjunction of requirements. ``Selector()`` matches everything;
    ``Selector.nothing()`` matches nothing (a nil LabelSelector)."""

    requirements: tuple[Requirement, ...] = ()
    matches_nothing: bool = False

    @classmethod
    def everything(cls) -> Selector:
        return cls()

    @classmethod
    def nothing(cls) -> Selector:
        return cls(matches_nothing=True)

    @property
    def empty(self) -> bool:
        return not self.requirements and not self.matches_nothing

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        if self.matches_nothing:
            return False
        labels = labels or {}
        return all(r.matches(labels) for r in self.requirements)

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


# ---- the string grammar -----------------------------------------------------

class _Tok(enum.Enum):
    IDENT = "identifier"
    END = "end of string"
    ERROR = "error"
    DOES_NOT_EXIST = "!"
    EQUALS = "="
    DOUBLE_EQUALS = "=="
    NOT_EQUALS = "!="
    GREATER = ">"
    LESS = "<"
    IN = "in"
    NOT_IN = "notin"
    OPEN = "("
    CLOSE = ")"
    COMMA = ","


_SYMBOLS = {
    "!": _Tok.DOES_NOT_EXIST, "=": _Tok.EQUALS, "==": _Tok.DOUBLE_EQUALS, "!=": _Tok.NOT_EQUALS,
    ">": _Tok.GREATER, "<": _Tok.LESS, "(": _Tok.OPEN, ")": _Tok.CLOSE, ",": _Tok.COMMA,
}
_SPECIAL = set("=!(),><")
_WHITESPACE = set(" \t\r\n")
_KEYWORDS = {"in": _Tok.IN, "notin": _Tok.NOT_IN}
_BINARY = {
    _Tok.IN: Operator.IN, _Tok.NOT_IN: Operator.NOT_IN, _Tok.EQUALS: Operator.EQUALS,
    _Tok.DOUBLE_EQUALS: Operator.DOUBLE_EQUALS, _Tok.NOT_EQUALS: Operator.NOT_EQUALS,
    _Tok.GREATER: Operator.GREATER_THAN, _Tok.LESS: Operator.LESS_THAN,
}


def _scan(text: str) -> list[tuple[_Tok, str, int]]:
    items = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WHITESPACE:
            i += 1
        if i >= n:
            items.append((_Tok.END, "", i))
            return items
        start = i
        if text[i] in _SPECIAL:
            # the longest run of special characters that is a known symbol
            best = None
            j = i
            while j < n and text[j] in _SPECIAL:
                j += 1
                if text[i:j] in _SYMBOLS:
                    best = j
                elif best is not None:
                    break
            if best is None:
                items.append((_Tok.ERROR, text[i:j], start))
                return items
            items.append((_SYMBOLS[text[i:best]], text[i:best], start))
            i = best
        else:
            while i < n and text[i] not in _WHITESPACE and text[i] not in _SPECIAL:
                i += 1
            word = text[start:i]
            items.append((_KEYWORDS.get(word, _Tok.IDENT), word, start))


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.items = _scan(text)
        self.pos = 0

    def _get(self, values: bool, advance: bool) -> tuple[_Tok, str, int]:
        tok, lit, at = self.items[min(self.pos, len(self.items) - 1)]
        if advance:
            self.pos += 1
        if values and tok in (_Tok.IN, _Tok.NOT_IN):
            tok = _Tok.IDENT  # "in" and "notin" are plain words where a value or key is expected
        return tok, lit, at

    def peek(self, values: bool = True) -> tuple[_Tok, str, int]:
        return self._get(values, False)

    def take(self, values: bool = True) -> tuple[_Tok, str, int]:
        return self._get(values, True)

    def fail(self, detail: str, at: int) -> SelectorParseError:
        return SelectorParseError(detail, self.text, at)

    def parse(self) -> list[Requirement]:
        requirements = []
        while True:
            tok, lit, at = self.peek()
            if tok in (_Tok.IDENT, _Tok.DOES_NOT_EXIST):
                requirements.append(self.requirement())
                tok, lit, at = self.take()
                if tok == _Tok.END:
                    return requirements
                if tok == _Tok.COMMA:
                    tok2, lit2, at2 = self.peek()
                    if tok2 not in (_Tok.IDENT, _Tok.DOES_NOT_EXIST):
                        raise self.fail(f"found '{lit2}', expected: identifier after ','", at2)
                    continue
                raise self.fail(f"found '{lit}', expected: ',' or 'end of string'", at)
            if tok == _Tok.END:
                return requirements
            raise self.fail(f"found '{lit}', expected: !, identifier, or 'end of string'", at)

    def requirement(self) -> Requirement:
        key, key_at, op = self.key_and_inferred_operator()
        if op is None:
            tok, lit, at = self.take(values=False)
            if tok not in _BINARY:
                expected = "=, !=, ==, in, notin, gt, lt"
                raise self.fail(f"found '{lit}', expected: {expected}", at)
            op = _BINARY[tok]
            operator_at = at
            values = self.set_values() if op in (Operator.IN, Operator.NOT_IN) else self.exact_value()
        else:
            operator_at, values = key_at, []
        for value, value_at in values:
            msgs = is_valid_label_value(value)
            if msgs:
                raise self.fail(f"invalid label value {value!r}: " + "; ".join(msgs), value_at)
        try:
            return new_requirement(key, op, [v for v, _ in values])
        except ValueError as e:
            at = values[0][1] if values and op in (Operator.GREATER_THAN, Operator.LESS_THAN) else operator_at
            raise self.fail(str(e), at) from None

    def key_and_inferred_operator(self) -> tuple[str, int, Operator | None]:
        op = None
        tok, lit, at = self.take()
        if tok == _Tok.DOES_NOT_EXIST:
            op = Operator.DOES_NOT_EXIST
            tok, lit, at = self.take()
        if tok != _Tok.IDENT:
            raise self.fail(f"found '{lit}', expected: identifier", at)
        msgs = is_qualified_name(lit)
        if msgs:
            raise self.fail(f"invalid label key {lit!r}: " + "; ".join(msgs), at)
        nxt, nlit, nat = self.peek()
        if nxt in (_Tok.END, _Tok.COMMA):
            if op is None:
                op = Operator.EXISTS
        elif op == Operator.DOES_NOT_EXIST:
            raise self.fail(f"found '{nlit}', expected: ',' or 'end of string'", nat)
        return lit, at, op

    def exact_value(self) -> list[tuple[str, int]]:
        tok, lit, at = self.peek()
        if tok in (_Tok.END, _Tok.COMMA):
            return [("", at)]
        tok, lit, at = self.take()
        if tok == _Tok.IDENT:
            return [(lit, at)]
        raise self.fail(f"found '{lit}', expected: identifier", at)

    def set_values(self) -> list[tuple[str, int]]:
        tok, lit, at = self.take()
        if tok != _Tok.OPEN:
            raise self.fail(f"found '{lit}' expected: '('", at)
        tok, lit, at = self.peek()
        if tok in (_Tok.IDENT, _Tok.COMMA):
            values = self.identifiers()
            tok, lit, at = self.take()
            if tok != _Tok.CLOSE:
                raise self.fail(f"found '{lit}', expected: ')'", at)
            return values
        if tok == _Tok.CLOSE:  # "()" is the set holding the empty string, as in Kubernetes
            self.take()
            return [("", at)]
        raise self.fail(f"found '{lit}', expected: ',', ')' or identifier", at)

    def identifiers(self) -> list[tuple[str, int]]:
        values: list[tuple[str, int]] = []
        while True:
            tok, lit, at = self.take()
            if tok == _Tok.IDENT:
                values.append((lit, at))
                tok2, lit2, at2 = self.peek()
                if tok2 == _Tok.COMMA:
                    continue
                if tok2 == _Tok.CLOSE:
                    return values
                raise self.fail(f"found '{lit2}', expected: ',' or ')'", at2)
            if tok == _Tok.COMMA:  # empty values: "(,a", "a,)", "a,,b"
                if not values:
                    values.append(("", at))
                tok2, _, at2 = self.peek()
                if tok2 == _Tok.CLOSE:
                    values.append(("", at2))
                    return values
                if tok2 == _Tok.COMMA:
                    self.take()
                    values.append(("", at2))
                continue
            raise self.fail(f"found '{lit}', expected: ',', or identifier", at)


def parse_selector(text: str) -> Selector:
    """Parse Kubernetes' label selector syntax; raises SelectorParseError."""
    if not isinstance(text, str):
        raise BadRequest(f"a label selector string is expected, got {type(text).__name__}")
    requirements = _Parser(text).parse()
    return Selector(tuple(sorted(requirements, key=lambda r: r.key)))


# ---- the object form ----------------------------------------------------------

_EXPRESSION_OPERATORS = {
    "In": Operator.IN, "NotIn": Operator.NOT_IN,
    "Exists": Operator.EXISTS, "DoesNotExist": Operator.DOES_NOT_EXIST,
}


@dataclass
class LabelSelectorRequirement:
    key: str
    operator: str  # In, NotIn, Exists, DoesNotExist
    values: list[str] = field(default_factory=list)


@dataclass
class LabelSelector:
    """metav1.LabelSelector: matchLabels AND matchExpressions."""

    match_labels: dict[str, str] = field(default_factory=dict)
    match_expressions: list[LabelSelectorRequirement] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LabelSelector:
        if not isinstance(data, Mapping):
            raise BadRequest("a label selector must be an object")
        labels = data.get("matchLabels") or {}
        exprs = data.get("matchExpressions") or []
        if not isinstance(labels, Mapping) or not isinstance(exprs, list):
            raise BadRequest("matchLabels must be an object and matchExpressions a list")
        parsed = []
        for e in exprs:
            if not isinstance(e, Mapping):
                raise BadRequest("each matchExpressions entry must be an object")
            parsed.append(LabelSelectorRequirement(e.get("key", ""), e.get("operator", ""),
                                                   list(e.get("values") or [])))
        return cls(dict(labels), parsed)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if self.match_labels:
            out["matchLabels"] = dict(self.match_labels)
        if self.match_expressions:
            out["matchExpressions"] = [
                {"key": e.key, "operator": e.operator, **({"values": list(e.values)} if e.values else {})}
                for e in self.match_expressions
            ]
        return out

    def as_selector(self) -> Selector:
        return selector_from_label_selector(self)


def selector_from_label_selector(value: LabelSelector | Mapping[str, Any] | None) -> Selector:
    """k8s' LabelSelectorAsSelector: None matches nothing, an empty selector
    everything. Raises BadRequest for an invalid selector."""
    if value is None:
        return Selector.nothing()
    ls = value if isinstance(value, LabelSelector) else LabelSelector.from_dict(value)
    if not ls.match_labels and not ls.match_expressions:
        return Selector.everything()
    requirements = []
    try:
        for k, v in ls.match_labels.items():
            requirements.append(new_requirement(k, Operator.EQUALS, [v]))
        for e in ls.match_expressions:
            op = _EXPRESSION_OPERATORS.get(e.operator)
            if op is None:
                raise ValueError(f"{e.operator!r} is not a valid label selector operator")
            requirements.append(new_requirement(e.key, op, e.values))
    except ValueError as e:
        raise BadRequest(f"invalid label selector: {e}") from None
    return Selector(tuple(sorted(requirements, key=lambda r: r.key)))


def selector_from_set(labels: Mapping[str, str]) -> Selector:
    """Equality on every label of the set (a Service's spec.selector)."""
    try:
        reqs = [new_requirement(k, Operator.EQUALS, [v]) for k, v in labels.items()]
    except ValueError as e:
        raise BadRequest(f"invalid label selector: {e}") from None
    return Selector(tuple(sorted(reqs, key=lambda r: r.key)))


LabelSelectorLike = str | Selector | LabelSelector | Mapping[str, Any] | None


def as_selector(value: LabelSelectorLike) -> Selector:
    """Anything the store accepts as a label selector. None and "" select
    everything; a mapping with only matchLabels/matchExpressions keys is a
    LabelSelector, any other mapping a set of labels to equal."""
    if value is None:
        return Selector.everything()
    if isinstance(value, Selector):
        return value
    if isinstance(value, str):
        return parse_selector(value)
    if isinstance(value, LabelSelector):
        return selector_from_label_selector(value)
    if isinstance(value, Mapping):
        if value and set(value) <= {"matchLabels", "matchExpressions"}:
            return selector_from_label_selector(value)
        return selector_from_set(value)
    raise BadRequest(f"not a label selector: {value!r}")
