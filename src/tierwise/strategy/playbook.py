"""Playbooks (客户策略手册): ordered rules turning a customer's profile into concrete actions.

A playbook is YAML text. Rules are tried top to bottom and the first whose `when` condition holds
applies; its name is the customer's reason. Actions are a service level (vip / standard / basic,
each with a response-time SLA in hours), a dedicated account manager flag, a contact channel and
cadence, an offer (a coupon value or a percent off), a recommended-products flag and a follow-up
task template. A separate `churn_warning` condition queues a retention task whatever rule applies.

Validation reports every bad entry at once, each as `file:line:column: message`, with positions
taken from the YAML nodes (and, inside a condition, from the condition's own parser). Parsing is
pure: callers read the text; this module does no I/O.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import random
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import yaml
from yaml.constructor import SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from tierwise.core.errors import ConfigError
from tierwise.strategy import conditions as cond
from tierwise.strategy.conditions import FIELDS, ConditionError, FieldSpec, Kind


class ServiceLevel(StrEnum):
    VIP = "vip"
    STANDARD = "standard"
    BASIC = "basic"


DEFAULT_SLA_HOURS: dict[str, float] = {"vip": 4.0, "standard": 24.0, "basic": 72.0}
"""Response time promised at each service level, unless the playbook says otherwise."""


class Channel(StrEnum):
    PHONE = "phone"
    SMS = "sms"
    EMAIL = "email"
    WECHAT = "wechat"
    APP_PUSH = "app_push"
    VISIT = "visit"
    SELF_SERVICE = "self_service"


NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
"""Rule names, task reasons and queues: stored in 64-character columns and shown in URLs."""


@dataclass(frozen=True)
class Contact:
    channel: str
    every_days: int


@dataclass(frozen=True)
class Offer:
    """`coupon`: a currency amount off; `percent`: a share off, 0 < value <= 100."""

    kind: str
    value: float


@dataclass(frozen=True)
class TaskTemplate:
    """A follow-up (回访) to queue; due after `due_hours`, or after the rule's SLA when unset."""

    reason: str
    queue: str | None = None
    due_hours: float | None = None


@dataclass(frozen=True)
class Rule:
    name: str
    service_level: str
    when: cond.Node | None = None
    """None: every customer (only as the last rule)."""
    when_text: str | None = None
    description: str | None = None
    account_manager: bool = False
    contact: Contact | None = None
    offer: Offer | None = None
    recommend_products: bool = False
    task: TaskTemplate | None = None
    line: int = 0

    def matches(self, record: Mapping[str, Any]) -> bool:
        return self.when is None or cond.evaluate(self.when, record)

    @property
    def reason(self) -> str:
        """Why a customer got this rule, as kept with the customer."""
        return (
            f"{self.name}: {self.when_text}" if self.when_text else f"{self.name}: every customer"
        )


@dataclass(frozen=True)
class ChurnWarning:
    when: cond.Node
    when_text: str
    task: TaskTemplate


@dataclass(frozen=True)
class Playbook:
    rules: tuple[Rule, ...]
    sla_hours: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SLA_HOURS))
    churn_warning: ChurnWarning | None = None
    source: str = "<playbook>"
    digest: str = ""
    """First 12 hex digits of the text's sha256: which playbook version decided."""

    def first_match(self, record: Mapping[str, Any]) -> Rule | None:
        """The rule that applies to `record` (profile key -> value): the first that matches."""
        return next((r for r in self.rules if r.matches(record)), None)

    def due_hours(self, rule: Rule) -> float | None:
        """Hours until the rule's task is due: its own `due_hours`, else its SLA."""
        if rule.task is None:
            return None
        if rule.task.due_hours is not None:
            return rule.task.due_hours
        return self.sla_hours[rule.service_level]

    def churn_due_hours(self) -> float:
        warning = self.churn_warning
        assert warning is not None
        if warning.task.due_hours is not None:
            return warning.task.due_hours
        return self.sla_hours[ServiceLevel.STANDARD]

    def rule(self, name: str) -> Rule:
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(name)


# --- errors ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    line: int
    column: int
    message: str


class PlaybookError(ConfigError):
    """Every problem of a playbook, one `file:line:column: message` line each."""

    def __init__(self, source: str, problems: list[Problem]) -> None:
        self.source = source
        self.problems = sorted(problems, key=lambda p: (p.line, p.column))
        super().__init__(
            "\n".join(f"{source}:{p.line}:{p.column}: {p.message}" for p in self.problems)
        )


# --- parsing -----------------------------------------------------------------------------------

_TOP = ("version", "service_levels", "churn_warning", "rules")
_RULE = (
    "name", "description", "when", "service_level", "account_manager", "contact", "offer",
    "recommend_products", "task",
)  # fmt: skip
_TASK = ("reason", "queue", "due_hours")
_MISSING = object()
_NUMERIC = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
"""Numbers YAML 1.1 reads as text, such as 1e3."""


class _Reader:
    """Walks composed YAML nodes, converting values and collecting problems with positions."""

    def __init__(self, fields: Mapping[str, FieldSpec]) -> None:
        self.problems: list[Problem] = []
        self.fields = fields
        self.constructor = SafeConstructor()

    def problem(self, node: Node, message: str, *, column_offset: int = 0) -> None:
        mark = node.start_mark
        self.problems.append(Problem(mark.line + 1, mark.column + 1 + column_offset, message))

    def mapping(self, node: Node, what: str, allowed: tuple[str, ...]) -> dict[str, Node] | None:
        """Key -> value node; duplicate and unknown keys are problems."""
        if not isinstance(node, MappingNode):
            self.problem(node, f"{what} must be a mapping of {', '.join(allowed)}")
            return None
        out: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, ScalarNode) else None
            if not isinstance(key, str) or key not in allowed:
                shown = key if isinstance(key, str) else "a non-text key"
                self.problem(key_node, f"unknown key {shown!r} in {what}; use {', '.join(allowed)}")
            elif key in out:
                self.problem(key_node, f"{key!r} given twice in {what}")
            else:
                out[key] = value_node
        return out

    def scalar(self, node: Node, what: str) -> Any:
        if not isinstance(node, ScalarNode):
            self.problem(node, f"{what} must be a single value")
            return _MISSING
        try:
            return self.constructor.construct_object(node, deep=True)
        except yaml.constructor.ConstructorError as e:  # unknown tags (!!python/...) and the like
            self.problem(node, f"{what}: {e.problem}")
            return _MISSING

    def name(self, node: Node, what: str) -> str | None:
        value = self.scalar(node, what)
        if value is _MISSING:
            return None
        if not isinstance(value, str) or not NAME.match(value):
            self.problem(
                node,
                f"{what} {value!r} must be lower-case letters, digits and _, starting with a "
                "letter, at most 64 characters",
            )
            return None
        return value

    def text(self, node: Node, what: str) -> str | None:
        value = self.scalar(node, what)
        if value is _MISSING:
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem(node, f"{what} must be text")
            return None
        return value

    def flag(self, node: Node, what: str) -> bool | None:
        value = self.scalar(node, what)
        if value is _MISSING:
            return None
        if not isinstance(value, bool):
            self.problem(node, f"{what} must be true or false, not {value!r}")
            return None
        return value

    def number(
        self, node: Node, what: str, *, low: float, high: float, integer: bool = False
    ) -> float | None:
        """A number with low < value <= high."""
        value = self.scalar(node, what)
        if value is _MISSING:
            return None
        if isinstance(value, str) and _NUMERIC.match(value.strip()):
            value = float(value)
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        if ok and integer and not float(value).is_integer():
            ok = False
        if not ok or not low < value <= high:
            kind = "a whole number" if integer else "a number"
            self.problem(node, f"{what} must be {kind} above {low:g} and at most {high:g}")
            return None
        return float(value)

    def choice(self, node: Node, what: str, choices: type[StrEnum]) -> str | None:
        value = self.scalar(node, what)
        if value is _MISSING:
            return None
        known = [c.value for c in choices]
        if value not in known:
            self.problem(node, f"{what} {value!r} is not one of {', '.join(known)}")
            return None
        return str(value)

    def condition(self, node: Node) -> tuple[cond.Node, str] | None:
        text = self.text(node, "when")
        if text is None:
            return None
        try:
            return cond.parse(text, self.fields), text
        except ConditionError as e:
            self._condition_problem(node, text, e)
            return None

    def _condition_problem(self, node: Node, text: str, error: ConditionError) -> None:
        """Point into the condition when its source is on one line, else at its start."""
        assert isinstance(node, ScalarNode)
        one_line = node.start_mark.line == node.end_mark.line
        if node.style in (None, "") and one_line:
            self.problem(node, error.message, column_offset=error.offset)
        elif node.style in ("'", '"') and one_line:
            escaped = text[: error.offset].count(node.style)
            if node.style == '"':
                escaped += text[: error.offset].count("\\")
            self.problem(node, error.message, column_offset=1 + error.offset + escaped)
        else:
            self.problem(node, f"{error.message} (character {error.offset + 1} of the condition)")

    def task(self, node: Node, what: str) -> TaskTemplate | None:
        items = self.mapping(node, what, _TASK)
        if items is None:
            return None
        if "reason" not in items:
            self.problem(node, f"{what} needs a reason")
            return None
        reason = self.name(items["reason"], "task reason")
        queue = self.name(items["queue"], "task queue") if "queue" in items else None
        due = None
        if "due_hours" in items:
            due = self.number(items["due_hours"], "task due_hours", low=0, high=24 * 366)
        if reason is None:
            return None
        return TaskTemplate(reason, queue, due)

    def contact(self, node: Node) -> Contact | None:
        items = self.mapping(node, "contact", ("channel", "every_days"))
        if items is None:
            return None
        missing = [k for k in ("channel", "every_days") if k not in items]
        if missing:
            self.problem(node, f"contact needs {' and '.join(missing)}")
            return None
        channel = self.choice(items["channel"], "contact channel", Channel)
        days = self.number(
            items["every_days"], "contact every_days", low=0, high=3660, integer=True
        )
        return None if channel is None or days is None else Contact(channel, int(days))

    def offer(self, node: Node) -> Offer | None:
        items = self.mapping(node, "offer", ("coupon", "percent"))
        if items is None:
            return None
        if len(items) != 1:
            self.problem(node, "offer needs exactly one of coupon (an amount) or percent")
            return None
        kind, value_node = next(iter(items.items()))
        high = 100.0 if kind == "percent" else 1e9
        value = self.number(value_node, f"offer {kind}", low=0, high=high)
        return None if value is None else Offer(kind, value)

    def rule(self, node: Node, taken: dict[str, int]) -> Rule | None:
        items = self.mapping(node, "a rule", _RULE)
        if items is None:
            return None
        line = node.start_mark.line + 1
        for required in ("name", "service_level"):
            if required not in items:
                self.problem(node, f"rule needs a {required}")
        name = self.name(items["name"], "rule name") if "name" in items else None
        if name is not None and name in taken:
            self.problem(items["name"], f"rule {name!r} already defined on line {taken[name]}")
            name = None
        elif name is not None:
            taken[name] = line
        level = None
        if "service_level" in items:
            level = self.choice(items["service_level"], "service_level", ServiceLevel)
        parsed = self.condition(items["when"]) if "when" in items else (None, None)
        description = (
            self.text(items["description"], "description") if "description" in items else None
        )
        manager = (
            self.flag(items["account_manager"], "account_manager")
            if "account_manager" in items
            else None
        )
        contact = self.contact(items["contact"]) if "contact" in items else None
        offer = self.offer(items["offer"]) if "offer" in items else None
        recommend = (
            self.flag(items["recommend_products"], "recommend_products")
            if "recommend_products" in items
            else None
        )
        task = self.task(items["task"], "task") if "task" in items else None
        if name is None or level is None or parsed is None:
            return None
        return Rule(
            name,
            level,
            when=parsed[0],
            when_text=parsed[1],
            description=description,
            account_manager=bool(manager),
            contact=contact,
            offer=offer,
            recommend_products=bool(recommend),
            task=task,
            line=line,
        )

    def service_levels(self, node: Node) -> dict[str, float]:
        hours = dict(DEFAULT_SLA_HOURS)
        items = self.mapping(node, "service_levels", tuple(s.value for s in ServiceLevel))
        for level, value_node in (items or {}).items():
            value = self.number(value_node, f"SLA hours of {level}", low=0, high=24 * 366)
            if value is not None:
                hours[level] = value
        return hours

    def churn_warning(self, node: Node) -> ChurnWarning | None:
        items = self.mapping(node, "churn_warning", ("when", "task"))
        if items is None:
            return None
        missing = [k for k in ("when", "task") if k not in items]
        if missing:
            self.problem(node, f"churn_warning needs {' and '.join(missing)}")
            return None
        parsed = self.condition(items["when"])
        task = self.task(items["task"], "churn_warning task")
        if parsed is None or task is None:
            return None
        return ChurnWarning(parsed[0], parsed[1], task)


def _keys(node: MappingNode) -> set[Any]:
    return {k.value for k, _ in node.value if isinstance(k, ScalarNode)}


def _compose(text: str, source: str) -> Node:
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        context = e.context or ""
        if context and e.context_mark is not None and e.context_mark is not mark:
            context += f" (from line {e.context_mark.line + 1}, column {e.context_mark.column + 1})"
        message = ": ".join(str(x) for x in (context, e.problem) if x)
        raise PlaybookError(source, [Problem(line, column, f"not valid YAML: {message}")]) from None
    except yaml.YAMLError as e:
        raise PlaybookError(source, [Problem(1, 1, f"not valid YAML: {e}")]) from None
    if root is None:
        raise PlaybookError(source, [Problem(1, 1, "the playbook is empty; it needs rules")])
    return root


def parse_playbook(
    text: str, source: str = "<playbook>", fields: Mapping[str, FieldSpec] = FIELDS
) -> Playbook:
    """The playbook in `text`; PlaybookError lists every problem with its line and column.

    `source` names the text in messages (a file path); `fields` is the allow-list conditions are
    checked against (see `conditions.with_segments` for custom segment schemes).
    """
    root = _compose(text, source)
    reader = _Reader(fields)
    top = reader.mapping(root, "the playbook", _TOP)
    if top is None:
        raise PlaybookError(source, reader.problems)
    if "version" in top:
        version = reader.scalar(top["version"], "version")
        if version is not _MISSING and version != 1:
            reader.problem(top["version"], f"version {version!r} is not supported; use 1")
    hours = reader.service_levels(top["service_levels"]) if "service_levels" in top else None
    warning = reader.churn_warning(top["churn_warning"]) if "churn_warning" in top else None
    rules: list[Rule] = []
    if "rules" not in top:
        reader.problem(root, "the playbook needs a `rules` list")
    elif not isinstance(top["rules"], SequenceNode) or not top["rules"].value:
        reader.problem(top["rules"], "rules must be a non-empty list of rules")
    else:
        taken: dict[str, int] = {}
        catch_all: int | None = None
        for node in top["rules"].value:
            rule = reader.rule(node, taken)
            if catch_all is not None:
                reader.problem(
                    node, f"this rule never applies: the rule on line {catch_all} has no `when`"
                )
            elif isinstance(node, MappingNode) and "when" not in _keys(node):
                catch_all = node.start_mark.line + 1
            if rule is not None:
                rules.append(rule)
    if reader.problems:
        raise PlaybookError(source, reader.problems)
    return Playbook(
        rules=tuple(rules),
        sla_hours=hours or dict(DEFAULT_SLA_HOURS),
        churn_warning=warning,
        source=source,
        digest=hashlib.sha256(text.encode()).hexdigest()[:12],
    )


# --- reachability ------------------------------------------------------------------------------


def _domain(spec: FieldSpec, literals: set[cond.Literal]) -> list[Any]:
    """One representative value per class of values every condition treats alike.

    Numbers: each literal, the midpoints between consecutive literals, one below and one above.
    Text: each literal and one unnamed value. Every field may also be missing (None). Searching
    these values is exhaustive: any record behaves like one built from them.
    """
    if spec.kind == Kind.BOOL:
        return [True, False, None]
    if spec.kind == Kind.NUMBER:
        points = sorted(float(v) for v in literals)
        if not points:
            return [0.0, None]
        mids = [(a + b) / 2 for a, b in itertools.pairwise(points)]
        return [points[0] - 1, *points, *mids, points[-1] + 1, None]
    texts = sorted(str(v) for v in literals)
    if spec.choices is None:
        return [*texts, "(other)" + "_" * max((len(t) for t in texts), default=0), None]
    unnamed = sorted(spec.choices - set(texts))
    return texts + unnamed[:1] + [None]


@dataclass(frozen=True)
class Reachability:
    """A witness record per rule (None when none was found) and whether the search was complete:
    when `settled`, a rule without a witness can never apply."""

    witnesses: dict[str, dict[str, Any] | None]
    settled: bool

    @property
    def unreachable(self) -> list[str]:
        return [name for name, w in self.witnesses.items() if w is None]


def _records(
    domains: dict[str, list[Any]], rng: random.Random, samples: int
) -> Iterator[dict[str, Any]]:
    keys = list(domains)
    for _ in range(samples):
        yield {k: rng.choice(domains[k]) for k in keys}


def reachability(
    playbook: Playbook, *, samples: int = 20_000, exhaustive_limit: int = 300_000, seed: int = 0
) -> Reachability:
    """Find, for each rule, a profile it applies to (earlier rules all failing).

    Random records first (cheap, usually enough); if some rule is still without a witness and
    the space of representative records is small enough, every one of them is tried, which
    settles the question.
    """
    literals: dict[str, set[cond.Literal]] = {}
    for node in [r.when for r in playbook.rules if r.when is not None]:
        for key, values in cond.literals_of(node).items():
            literals.setdefault(key, set()).update(values)
    domains = {k: _domain(cond.KEY_SPECS[k], v) for k, v in sorted(literals.items())}
    witnesses: dict[str, dict[str, Any] | None] = dict.fromkeys(r.name for r in playbook.rules)

    def search(records: Iterator[dict[str, Any]]) -> bool:
        for record in records:
            rule = playbook.first_match(record)
            if rule is not None and witnesses[rule.name] is None:
                witnesses[rule.name] = record
                if all(w is not None for w in witnesses.values()):
                    return True
        return False

    if search(_records(domains, random.Random(seed), samples)):
        return Reachability(witnesses, settled=True)
    if math.prod(len(d) for d in domains.values()) > exhaustive_limit:
        return Reachability(witnesses, settled=False)
    keys = list(domains)
    search(dict(zip(keys, combo, strict=True)) for combo in itertools.product(*domains.values()))
    return Reachability(witnesses, settled=True)
