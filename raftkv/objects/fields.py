"""Field selectors: ``metadata.name=web,status.phase!=Running``.

Kubernetes' grammar: comma-separated terms ``path=value``, ``path==value``
or ``path!=value``; a value may escape ``\\``, ``,`` and ``=`` with a
backslash. Any dotted path into the object may be selected on; a missing
field reads as the empty string (as an unset ``spec.nodeName`` does in
Kubernetes), booleans as ``true``/``false``, numbers in decimal. Objects and
lists are not selectable: they equal no value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from raftkv.objects.errors import BadRequest

_OPERATORS = ("!=", "==", "=")


class FieldSelectorParseError(BadRequest):
    pass


@dataclass(frozen=True)
class FieldTerm:
    path: str
    operator: str  # "=", "==" or "!="
    value: str

    def matches(self, obj: Mapping[str, Any]) -> bool:
        actual = field_value(obj, self.path)
        equal = actual is not None and actual == self.value
        return not equal if self.operator == "!=" else equal

    def __str__(self) -> str:
        return f"{self.path}{self.operator}{escape_value(self.value)}"


@dataclass(frozen=True)
class FieldSelector:
    terms: tuple[FieldTerm, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.terms

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all(t.matches(obj) for t in self.terms)

    def requires(self, path: str) -> str | None:
        """The value an equality term demands of ``path``, if any."""
        for t in self.terms:
            if t.path == path and t.operator != "!=":
                return t.value
        return None

    def __str__(self) -> str:
        return ",".join(str(t) for t in self.terms)


def field_value(obj: Mapping[str, Any], path: str) -> str | None:
    """The selectable string at a dotted path; None for an object or list."""
    node: Any = obj
    for part in path.split("."):
        if not isinstance(node, Mapping):
            return ""
        node = node.get(part)
        if node is None:
            return ""
    if isinstance(node, bool):
        return "true" if node else "false"
    if isinstance(node, (int, float, str)):
        return str(node)
    return None


def _split_terms(text: str) -> list[str]:
    terms, start, escaped = [], 0, False
    for i, c in enumerate(text):
        if escaped:
            escaped = False
        elif c == "\\":
            escaped = True
        elif c == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    for i in range(len(term)):
        for op in _OPERATORS:
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op):]
    return None


def unescape_value(text: str) -> str:
    out, escaped = [], False
    for c in text:
        if escaped:
            if c not in "\\,=":
                raise FieldSelectorParseError(f"invalid field selector: invalid escape sequence: \\{c}")
            out.append(c)
            escaped = False
        elif c == "\\":
            escaped = True
        elif c in ",=":
            raise FieldSelectorParseError(f"invalid field selector: unescaped character in value: {c}")
        else:
            out.append(c)
    if escaped:
        raise FieldSelectorParseError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


def escape_value(text: str) -> str:
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


def parse_field_selector(text: str) -> FieldSelector:
    if not isinstance(text, str):
        raise FieldSelectorParseError(f"a field selector string is expected, got {type(text).__name__}")
    terms = []
    for part in sorted(_split_terms(text)) if text else []:
        if not part.strip():
            continue
        split = _split_term(part)
        if split is None:
            raise FieldSelectorParseError(f"invalid selector: '{text}'; can't understand '{part}'")
        path, op, raw = split
        path = path.strip()
        if not path:
            raise FieldSelectorParseError(f"invalid selector: '{text}'; can't understand '{part}'")
        terms.append(FieldTerm(path, op, unescape_value(raw.strip())))
    return FieldSelector(tuple(terms))


FieldSelectorLike = str | FieldSelector | Mapping[str, str] | None


def as_field_selector(value: FieldSelectorLike) -> FieldSelector:
    """None or "" select everything; a mapping means path == value for each entry."""
    if value is None:
        return FieldSelector()
    if isinstance(value, FieldSelector):
        return value
    if isinstance(value, str):
        return parse_field_selector(value)
    if isinstance(value, Mapping):
        return FieldSelector(tuple(FieldTerm(str(k), "=", str(v)) for k, v in sorted(value.items())))
    raise FieldSelectorParseError(f"not a field selector: {value!r}")
