"""The condition language of playbooks: `tier = 'high' and churn_probability >= 0.6`.

Conditions are parsed by a hand-written tokenizer and recursive-descent parser into a small AST
over allow-listed profile fields and operators, and type-checked as they are parsed: a field is
text (optionally from a closed vocabulary), number or yes/no, and literals must match. Nothing a
condition says is ever executed or spliced into SQL: the evaluator here walks the AST in Python,
and the services compile the same AST to bound-parameter SQLAlchemy expressions.

Semantics are two-valued: a comparison with a missing (null) value is false, whatever the
operator, and `not` negates exactly; test for missing values with `is null` / `is not null`.

    condition  := or
    or         := and ("or" and)*
    and        := not ("and" not)*
    not        := "not" not | "(" condition ")" | test
    test       := FIELD OP literal | FIELD ["not"] "in" "(" literal ("," literal)* ")"
                | FIELD "is" ["not"] "null"
    OP         := "=" | "==" | "!=" | "<>" | "<" | "<=" | ">" | ">="
    literal    := NUMBER | 'text' | "text" | true | false      (quotes are doubled to escape)
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from tierwise.core.errors import InvalidInputError
from tierwise.core.vocab import AbcClass, ChurnRisk, Class8, Segment, Stage, ValueTier

MAX_LENGTH = 2_000
MAX_DEPTH = 32
"""Bounds on a condition's size and nesting: the parser recurses, so depth is capped."""


class Kind(StrEnum):
    TEXT = "text"
    NUMBER = "number"
    BOOL = "yes/no"


@dataclass(frozen=True)
class FieldSpec:
    """An allow-listed profile field: its key in the published profile, type and vocabulary."""

    key: str
    kind: Kind
    choices: frozenset[str] | None = None


def _vocab(values: type[StrEnum]) -> frozenset[str]:
    return frozenset(v.value for v in values)


def _fields() -> dict[str, FieldSpec]:
    specs = [
        (("segment", "rfm_segment"), FieldSpec("rfm_segment", Kind.TEXT, _vocab(Segment))),
        (("class8", "rfm_class8"), FieldSpec("rfm_class8", Kind.TEXT, _vocab(Class8))),
        (("abc", "abc_class"), FieldSpec("abc_class", Kind.TEXT, _vocab(AbcClass))),
        (("tier", "value_tier"), FieldSpec("value_tier", Kind.TEXT, _vocab(ValueTier))),
        (("stage", "lifecycle_stage"), FieldSpec("lifecycle_stage", Kind.TEXT, _vocab(Stage))),
        (("churn_risk",), FieldSpec("churn_risk", Kind.TEXT, _vocab(ChurnRisk))),
        (("consent", "consent_marketing"), FieldSpec("consent_marketing", Kind.BOOL)),
        (("unprofitable", "is_unprofitable"), FieldSpec("is_unprofitable", Kind.BOOL)),
    ]
    numbers = (
        "clv", "profit", "revenue", "orders", "recency_days", "tenure_days", "churn_probability",
        "p_alive", "predicted_purchases", "avg_order_value", "gross_margin", "complaints",
        "unresolved_complaints", "follow_ups", "last_csat", "mean_nps", "views", "carts",
        "service_cost", "marketing_cost", "acquisition_cost", "discount_share",
    )  # fmt: skip
    texts = (
        "account_manager", "region", "city", "acquisition_channel", "preferred_channel",
        "preferred_category", "gender", "age_band",
    )  # fmt: skip
    out = {name: spec for names, spec in specs for name in names}
    out |= {name: FieldSpec(name, Kind.NUMBER) for name in numbers}
    out |= {name: FieldSpec(name, Kind.TEXT) for name in texts}
    return out


FIELDS: dict[str, FieldSpec] = _fields()
"""Every field a condition may name (short aliases included), by its name in conditions."""

KEY_SPECS: dict[str, FieldSpec] = {spec.key: spec for spec in FIELDS.values()}
"""The same specs by profile key, for evaluators and compilers."""

COMPARISONS = ("=", "!=", "<", "<=", ">", ">=")
ORDERED = frozenset({"<", "<=", ">", ">="})

Literal = str | float | bool


# --- the AST ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Compare:
    key: str
    op: str
    value: Literal


@dataclass(frozen=True)
class Member:
    key: str
    values: tuple[Literal, ...]
    negated: bool = False


@dataclass(frozen=True)
class IsNull:
    key: str
    negated: bool = False


@dataclass(frozen=True)
class Not:
    operand: Node


@dataclass(frozen=True)
class And:
    operands: tuple[Node, ...]


@dataclass(frozen=True)
class Or:
    operands: tuple[Node, ...]


Node = Compare | Member | IsNull | Not | And | Or


class ConditionError(InvalidInputError):
    """A condition that does not parse or type-check; `offset` is where, 0-based."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset

    def __str__(self) -> str:
        return f"{self.message} (at character {self.offset + 1})"


# --- tokens ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    kind: str  # name | number | text | op | punct | end
    text: str
    offset: int
    value: Literal | None = None


_KEYWORDS = frozenset({"and", "or", "not", "in", "is", "null", "true", "false"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_OPS = ("<=", ">=", "!=", "<>", "==", "=", "<", ">")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def tokenize(text: str) -> list[Token]:
    """Tokens of `text`, ending with an `end` token; keywords are case-insensitive names."""
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
        elif ch in "'\"":
            i = _text_token(text, i, tokens)
        elif (m := _NUMBER.match(text, i)) and (ch != "-" or _after_operator(tokens)):
            value = float(m.group())
            if not math.isfinite(value):
                raise ConditionError(f"number {m.group()} is out of range", i)
            tokens.append(Token("number", m.group(), i, value))
            i = m.end()
        elif m := _NAME.match(text, i):
            tokens.append(Token("name", m.group(), i))
            i = m.end()
        elif op := next((o for o in _OPS if text.startswith(o, i)), None):
            tokens.append(Token("op", op, i))
            i += len(op)
        elif ch in "(),":
            tokens.append(Token("punct", ch, i))
            i += 1
        else:
            raise ConditionError(f"unexpected character {ch!r}", i)
    tokens.append(Token("end", "", n))
    return tokens


def _after_operator(tokens: list[Token]) -> bool:
    """A leading minus is a sign only where a literal may start (after an operator, `(`, `,`)."""
    return bool(tokens) and (tokens[-1].kind == "op" or tokens[-1].text in "(,")


def _text_token(text: str, start: int, tokens: list[Token]) -> int:
    quote, i, parts = text[start], start + 1, []
    while True:
        end = text.find(quote, i)
        if end < 0:
            raise ConditionError("text is not closed by a matching quote", start)
        parts.append(text[i:end])
        if text.startswith(quote * 2, end):
            parts.append(quote)
            i = end + 2
            continue
        value = "".join(parts)
        if bad := _CONTROL.search(value):
            raise ConditionError("text may not hold control characters", i + bad.start())
        tokens.append(Token("text", text[start : end + 1], start, value))
        return end + 1


# --- the parser ------------------------------------------------------------------------------


class _Parser:
    def __init__(self, text: str, fields: Mapping[str, FieldSpec]) -> None:
        self.tokens = tokenize(text)
        self.pos = 0
        self.fields = fields

    @property
    def token(self) -> Token:
        return self.tokens[self.pos]

    def keyword(self, *words: str) -> bool:
        t = self.token
        return t.kind == "name" and t.text.lower() in words

    def take(self) -> Token:
        t = self.token
        self.pos += 1
        return t

    def expect(self, text: str, what: str) -> Token:
        t = self.token
        if t.text.lower() != text or t.kind in ("text", "number"):
            raise ConditionError(f"expected {what}, found {_describe(t)}", t.offset)
        return self.take()

    def parse(self) -> Node:
        node = self.disjunction(0)
        if self.token.kind != "end":
            raise ConditionError(
                f"expected `and`, `or` or the end, found {_describe(self.token)}",
                self.token.offset,
            )
        return node

    def disjunction(self, depth: int) -> Node:
        parts = [self.conjunction(depth)]
        while self.keyword("or"):
            self.take()
            parts.append(self.conjunction(depth))
        return parts[0] if len(parts) == 1 else Or(tuple(parts))

    def conjunction(self, depth: int) -> Node:
        parts = [self.negation(depth)]
        while self.keyword("and"):
            self.take()
            parts.append(self.negation(depth))
        return parts[0] if len(parts) == 1 else And(tuple(parts))

    def negation(self, depth: int) -> Node:
        if depth > MAX_DEPTH:
            raise ConditionError(f"nested deeper than {MAX_DEPTH} levels", self.token.offset)
        if self.keyword("not"):
            self.take()
            return Not(self.negation(depth + 1))
        if self.token.kind == "punct" and self.token.text == "(":
            self.take()
            node = self.disjunction(depth + 1)
            self.expect(")", "`)`")
            return node
        return self.test()

    def test(self) -> Node:
        t = self.token
        if t.kind != "name" or t.text.lower() in _KEYWORDS:
            raise ConditionError(f"expected a field name, found {_describe(t)}", t.offset)
        spec = self.fields.get(t.text)
        if spec is None:
            raise ConditionError(
                f"unknown field {t.text!r}; known: {_known(self.fields)}", t.offset
            )
        self.take()
        if self.keyword("is"):
            self.take()
            negated = self.keyword("not")
            if negated:
                self.take()
            self.expect("null", "`null`")
            return IsNull(spec.key, negated)
        if self.keyword("not", "in"):
            negated = self.keyword("not")
            if negated:
                self.take()
            self.expect("in", "`in`")
            self.expect("(", "`(` starting the list")
            values = [self.literal(spec, t.text, "in")]
            while self.token.text == "," and self.token.kind == "punct":
                self.take()
                values.append(self.literal(spec, t.text, "in"))
            self.expect(")", "`,` or `)`")
            return Member(spec.key, tuple(values), negated)
        op_token = self.token
        if op_token.kind != "op":
            raise ConditionError(
                f"expected an operator after {t.text} (=, !=, <, <=, >, >=, in, not in, is null), "
                f"found {_describe(op_token)}",
                op_token.offset,
            )
        self.take()
        op = {"==": "=", "<>": "!="}.get(op_token.text, op_token.text)
        if op in ORDERED and spec.kind != Kind.NUMBER:
            raise ConditionError(
                f"{t.text} is {spec.kind}; {op} compares numbers only", op_token.offset
            )
        return Compare(spec.key, op, self.literal(spec, t.text, op))

    def literal(self, spec: FieldSpec, name: str, op: str) -> Literal:
        t = self.take()
        if t.kind == "name" and t.text.lower() in ("true", "false"):
            value: Literal = t.text.lower() == "true"
            kind = Kind.BOOL
        elif t.kind == "number":
            assert isinstance(t.value, float)
            value, kind = t.value, Kind.NUMBER
        elif t.kind == "text":
            assert isinstance(t.value, str)
            value, kind = t.value, Kind.TEXT
        elif t.kind == "name" and t.text.lower() == "null":
            raise ConditionError(f"compare with null using `{name} is null`", t.offset)
        else:
            raise ConditionError(f"expected a value after {op}, found {_describe(t)}", t.offset)
        if kind != spec.kind:
            raise ConditionError(
                f"{name} is {spec.kind}, not {kind}: {t.text} cannot be compared with it", t.offset
            )
        if spec.choices is not None and value not in spec.choices:
            raise ConditionError(
                f"{t.text} is not a value of {name}; known: {', '.join(sorted(spec.choices))}",
                t.offset,
            )
        return value


def _describe(t: Token) -> str:
    return "the end" if t.kind == "end" else repr(t.text[:40])


def _known(fields: Mapping[str, FieldSpec]) -> str:
    return ", ".join(sorted(fields))


def parse(text: str, fields: Mapping[str, FieldSpec] = FIELDS) -> Node:
    """The AST of `text`, type-checked against `fields`; ConditionError says what and where."""
    if len(text) > MAX_LENGTH:
        raise ConditionError(f"longer than {MAX_LENGTH} characters", MAX_LENGTH)
    if not text.strip():
        raise ConditionError("empty condition", 0)
    return _Parser(text, fields).parse()


def with_segments(names: frozenset[str]) -> dict[str, FieldSpec]:
    """`FIELDS` accepting the segment names of a custom scheme as well as the built-in ones."""
    spec = FieldSpec("rfm_segment", Kind.TEXT, _vocab(Segment) | names)
    return {name: spec if s.key == "rfm_segment" else s for name, s in FIELDS.items()}


# --- evaluation and rendering -----------------------------------------------------------------


def field_value(record: Mapping[str, Any], key: str) -> Literal | None:
    """A record's value for `key` as the language sees it: a value of the wrong type is null."""
    value = record.get(key)
    kind = KEY_SPECS[key].kind
    if kind == Kind.NUMBER:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        try:
            number = float(value)
        except OverflowError:  # an integer beyond any float
            return None
        return number if math.isfinite(number) else None
    if kind == Kind.BOOL:
        return value if isinstance(value, bool) else None
    return value if isinstance(value, str) else None


def _compare(left: Literal, op: str, right: Literal) -> bool:
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    assert isinstance(left, float) and isinstance(right, float)
    if op == "<":
        return left < right
    if op == "<=":
        return left <= right
    if op == ">":
        return left > right
    return left >= right


def evaluate(node: Node, record: Mapping[str, Any]) -> bool:
    """Whether `record` (profile key -> value) satisfies `node`; the reference semantics."""
    if isinstance(node, Compare):
        value = field_value(record, node.key)
        return value is not None and _compare(value, node.op, node.value)
    if isinstance(node, Member):
        value = field_value(record, node.key)
        return value is not None and (value in node.values) != node.negated
    if isinstance(node, IsNull):
        return (field_value(record, node.key) is None) != node.negated
    if isinstance(node, Not):
        return not evaluate(node.operand, record)
    if isinstance(node, And):
        return all(evaluate(part, record) for part in node.operands)
    return any(evaluate(part, record) for part in node.operands)


def render_literal(value: Literal) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)
    return "'" + value.replace("'", "''") + "'"


def render(node: Node) -> str:
    """Canonical text of `node`, which parses back to an equal AST (fields by profile key)."""
    if isinstance(node, Compare):
        return f"{node.key} {node.op} {render_literal(node.value)}"
    if isinstance(node, Member):
        listed = ", ".join(render_literal(v) for v in node.values)
        return f"{node.key} {'not in' if node.negated else 'in'} ({listed})"
    if isinstance(node, IsNull):
        return f"{node.key} is {'not null' if node.negated else 'null'}"
    if isinstance(node, Not):
        return f"not ({render(node.operand)})"
    joiner = " and " if isinstance(node, And) else " or "
    return joiner.join(f"({render(part)})" for part in node.operands)


def keys_of(node: Node) -> set[str]:
    """Profile keys `node` reads."""
    if isinstance(node, Compare | Member | IsNull):
        return {node.key}
    if isinstance(node, Not):
        return keys_of(node.operand)
    return set().union(*(keys_of(part) for part in node.operands))


def literals_of(node: Node) -> dict[str, set[Literal]]:
    """Literals `node` compares each profile key with (for searching witnesses)."""
    if isinstance(node, Compare):
        return {node.key: {node.value}}
    if isinstance(node, Member):
        return {node.key: set(node.values)}
    if isinstance(node, IsNull):
        return {node.key: set()}
    parts = [node.operand] if isinstance(node, Not) else list(node.operands)
    out: dict[str, set[Literal]] = {}
    for part in parts:
        for key, values in literals_of(part).items():
            out.setdefault(key, set()).update(values)
    return out
