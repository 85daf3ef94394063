"""The playbook applied to the published profiles: who gets which treatment, and the 回访 tasks.

Conditions are compiled to SQLAlchemy expressions over the published profile's typed columns, or
over its JSON document for fields without one, always with bound parameters. Every comparison is
guarded so that, like the pure evaluator in `strategy.conditions`, a missing value or one of the
wrong JSON type makes it false rather than unknown; a property test holds the two to agreement.

Applying records each customer's rule (and the actions it gives, with the customer's top
recommended product ids when the rule recommends products) under `playbook` in the customer's
published profile document, which is where every screen already reads a customer, and opens
follow-up tasks through `store.tasks.open_task`, which never doubles an active task for the same
customer and reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, and_, case, false, func, not_, or_, select, true, update
from sqlalchemy.orm import Session, defer

from tierwise.core.errors import ConfigError, NotFoundError
from tierwise.core.settings import Settings
from tierwise.services.access import Viewer, for_viewer, require_operator, scope
from tierwise.services.serving import SUMMARY_FIELDS, Store
from tierwise.store.audit import audit
from tierwise.store.models import PublishedProfile, User, utcnow
from tierwise.store.publish import TYPED_COLUMNS, current_run
from tierwise.store.tasks import open_task
from tierwise.strategy import conditions as cond
from tierwise.strategy.conditions import KEY_SPECS, Kind
from tierwise.strategy.playbook import Playbook, Reachability, Rule, parse_playbook, reachability

DEFAULT_PLAYBOOK = "default_playbook.yaml"
PROFILE_KEY = "playbook"
"""Where a customer's applied rule is kept in the published profile document."""
CHURN_WARNING_RULE = "churn_warning"
BATCH = 2_000


# --- loading -----------------------------------------------------------------------------------


def condition_fields(settings: Settings) -> dict[str, cond.FieldSpec]:
    """The allow-list, with the segment names of custom schemes accepted too."""
    custom = {rule.segment for rules in settings.scoring.schemes.values() for rule in rules}
    return cond.with_segments(frozenset(custom))


def read_playbook(path: Path, settings: Settings | None = None) -> Playbook:
    """Parse the playbook at `path`; PlaybookError lists each bad entry with line and column."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such playbook file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read the playbook: {e}") from None
    fields = condition_fields(settings) if settings is not None else cond.FIELDS
    return parse_playbook(text, str(path), fields)


def load_playbook(settings: Settings) -> Playbook:
    """The configured playbook (`[playbook] path`), or the shipped default."""
    if settings.playbook.path is not None:
        return read_playbook(settings.resolve(settings.playbook.path), settings)
    text = resources.files("tierwise.strategy").joinpath(DEFAULT_PLAYBOOK).read_text("utf-8")
    return parse_playbook(text, DEFAULT_PLAYBOOK, condition_fields(settings))


@dataclass(frozen=True)
class CheckResult:
    playbook: Playbook
    reach: Reachability


def check_playbook(path: Path, settings: Settings | None = None) -> CheckResult:
    """Validate a playbook file and find a customer profile each rule would apply to."""
    playbook = read_playbook(path, settings)
    return CheckResult(playbook, reachability(playbook))


# --- compiling conditions ----------------------------------------------------------------------

_TYPED = {key: getattr(PublishedProfile, key) for key in TYPED_COLUMNS if key in KEY_SPECS}
"""Profile keys with a typed column: compared there (and indexed for the common ones)."""

_JSON_TYPES: dict[str, dict[Kind, tuple[str, ...]]] = {
    "sqlite": {
        Kind.NUMBER: ("integer", "real"),
        Kind.TEXT: ("text",),
        Kind.BOOL: ("true", "false"),
    },
    "postgresql": {Kind.NUMBER: ("number",), Kind.TEXT: ("string",), Kind.BOOL: ("boolean",)},
}
"""JSON value types each kind accepts, as the database's json_type / jsonb_typeof names them."""


def _sqlite_json(key: str, kind: Kind) -> ColumnElement[Any]:
    path = f'$."{key}"'  # a bound parameter, and `key` comes from the allow-list
    value: ColumnElement[Any] = func.json_extract(PublishedProfile.profile, path)
    typeof = func.json_type(PublishedProfile.profile, path)
    return case((typeof.in_(_JSON_TYPES["sqlite"][kind]), value))


def _postgresql_json(key: str, kind: Kind) -> ColumnElement[Any]:
    element = PublishedProfile.profile[key]
    value: ColumnElement[Any] = {
        Kind.NUMBER: element.as_float,
        Kind.TEXT: element.as_string,
        Kind.BOOL: element.as_boolean,
    }[kind]()
    typeof = func.jsonb_typeof(element)
    return case((typeof.in_(_JSON_TYPES["postgresql"][kind]), value))


_JSON_VALUE: dict[str, Callable[[str, Kind], ColumnElement[Any]]] = {
    "sqlite": _sqlite_json,
    "postgresql": _postgresql_json,
}


def _column(key: str, dialect: str) -> ColumnElement[Any]:
    if key in _TYPED:
        column: ColumnElement[Any] = _TYPED[key]
        return column
    try:
        read = _JSON_VALUE[dialect]
    except KeyError:
        raise ConfigError(f"playbooks need SQLite or PostgreSQL, not {dialect}") from None
    return read(key, KEY_SPECS[key].kind)


def _comparison(column: ColumnElement[Any], op: str, value: cond.Literal) -> ColumnElement[bool]:
    return {
        "=": column.__eq__,
        "!=": column.__ne__,
        "<": column.__lt__,
        "<=": column.__le__,
        ">": column.__gt__,
        ">=": column.__ge__,
    }[op](value)


def compile_condition(node: cond.Node, dialect: str) -> ColumnElement[bool]:
    """`node` as a two-valued SQL expression over PublishedProfile, for `dialect`."""
    if isinstance(node, cond.Compare):
        column = _column(node.key, dialect)
        return and_(column.is_not(None), _comparison(column, node.op, node.value))
    if isinstance(node, cond.Member):
        column = _column(node.key, dialect)
        values = list(node.values)
        test = column.not_in(values) if node.negated else column.in_(values)
        return and_(column.is_not(None), test)
    if isinstance(node, cond.IsNull):
        column = _column(node.key, dialect)
        return column.is_not(None) if node.negated else column.is_(None)
    if isinstance(node, cond.Not):
        return not_(compile_condition(node.operand, dialect))
    parts = [compile_condition(part, dialect) for part in node.operands]
    return and_(*parts) if isinstance(node, cond.And) else or_(*parts)


def _matches(rule: Rule, dialect: str) -> ColumnElement[bool]:
    return true() if rule.when is None else compile_condition(rule.when, dialect)


def rule_index(playbook: Playbook, dialect: str) -> ColumnElement[Any]:
    """The 0-based index of the rule applying to each profile (first match), NULL if none."""
    return case(*((_matches(r, dialect), i) for i, r in enumerate(playbook.rules)), else_=None)


def churn_flag(playbook: Playbook, dialect: str) -> ColumnElement[bool]:
    warning = playbook.churn_warning
    return false() if warning is None else compile_condition(warning.when, dialect)


def record_of(profile: PublishedProfile) -> dict[str, Any]:
    """What the pure evaluator sees of a profile: its document, typed columns taking precedence
    (they hold the converted values the compiled conditions compare)."""
    record = dict(profile.profile)
    record.update({key: getattr(profile, key) for key in _TYPED})
    return record


def _dialect(session: Session) -> str:
    return session.get_bind().dialect.name


# --- overview: customers per rule --------------------------------------------------------------


@dataclass(frozen=True)
class RuleView:
    rule: Rule
    sla_hours: float
    due_hours: float | None
    customers: int


@dataclass(frozen=True)
class PlaybookOverview:
    run_id: str | None
    source: str
    digest: str
    rules: list[RuleView]
    unmatched: int
    churn_warnings: int
    """Customers the churn warning flags (a retention task unless their rule has a task)."""
    task_candidates: int
    """Customers an apply would give a task (before deduplication against open ones)."""
    playbook: Playbook = field(repr=False)


def _tally(
    session: Session, viewer: Viewer, run_id: str, playbook: Playbook
) -> tuple[dict[int | None, int], int, int]:
    """Customers per rule index, churn-flagged customers, and task candidates."""
    dialect = _dialect(session)
    index = rule_index(playbook, dialect).label("rule")
    flag = churn_flag(playbook, dialect).label("flag")
    decided = scope(viewer, run_id=run_id).with_only_columns(index, flag).subquery()
    # grouped by the subquery's columns: a constant flag (no churn warning) would otherwise
    # read as GROUP BY <position> in SQLite
    rows = session.execute(
        select(decided.c.rule, decided.c.flag, func.count()).group_by(
            decided.c.rule, decided.c.flag
        )
    ).all()
    per_rule: dict[int | None, int] = {}
    flagged = candidates = 0
    for i, is_flagged, n in rows:
        per_rule[i] = per_rule.get(i, 0) + n
        has_task = i is not None and playbook.rules[i].task is not None
        flagged += n if is_flagged else 0
        candidates += n if has_task or is_flagged else 0
    return per_rule, flagged, candidates


def overview(store: Store, viewer: Viewer, playbook: Playbook) -> PlaybookOverview:
    """Each rule with how many of the viewer's customers it applies to in the current run."""
    with store.read() as session:
        run = current_run(session)
        counts: dict[int | None, int] = {}
        flagged = candidates = 0
        if run is not None:
            counts, flagged, candidates = _tally(session, viewer, run.run_id, playbook)
    return PlaybookOverview(
        run_id=run.run_id if run is not None else None,
        source=playbook.source,
        digest=playbook.digest,
        rules=[
            RuleView(
                r, playbook.sla_hours[r.service_level], playbook.due_hours(r), counts.get(i, 0)
            )
            for i, r in enumerate(playbook.rules)
        ],
        unmatched=counts.get(None, 0),
        churn_warnings=flagged,
        task_candidates=candidates,
        playbook=playbook,
    )


@dataclass(frozen=True)
class RuleCustomers:
    run_id: str | None
    rule: str
    items: list[dict[str, Any]]
    total: int
    page: int
    page_size: int


def rule_customers(
    store: Store,
    viewer: Viewer,
    playbook: Playbook,
    name: str,
    *,
    page: int = 1,
    page_size: int = 50,
) -> RuleCustomers:
    """One page of the viewer's customers a rule applies to now, masked, by customer id."""
    try:
        position = [r.name for r in playbook.rules].index(name)
    except ValueError:
        raise NotFoundError(f"no rule {name!r} in {playbook.source}") from None
    with store.read() as session:
        run = current_run(session)
        if run is None:
            return RuleCustomers(None, name, [], 0, page, page_size)
        query = scope(viewer, run_id=run.run_id).where(
            rule_index(playbook, _dialect(session)) == position
        )
        total = session.scalar(query.with_only_columns(func.count())) or 0
        rows = session.scalars(
            query.options(defer(PublishedProfile.profile))
            .order_by(PublishedProfile.customer_id)
            .offset((page - 1) * page_size)
            .limit(page_size)
        ).all()
        items = [for_viewer(viewer, {f: getattr(r, f) for f in SUMMARY_FIELDS}) for r in rows]
        return RuleCustomers(run.run_id, name, items, total, page, page_size)


# --- applying ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RuleOutcome:
    name: str
    customers: int
    tasks_created: int
    tasks_open: int
    """Customers whose task for this reason was already open (not doubled)."""


@dataclass(frozen=True)
class ApplyResult:
    run_id: str | None
    digest: str
    dry_run: bool
    customers: int
    rules: list[RuleOutcome]
    unmatched: int
    churn_warnings: RuleOutcome
    profiles_updated: int

    @property
    def tasks_created(self) -> int:
        return sum(r.tasks_created for r in self.rules) + self.churn_warnings.tasks_created


def recommended_products(profile: Mapping[str, Any]) -> list[str]:
    """The customer's top recommended product ids, as the run published and exported them
    (`recommended_product_ids`, "P1;P2;…", repeat and new items interleaved)."""
    ids = profile.get("recommended_product_ids")
    return [p for p in ids.split(";") if p] if isinstance(ids, str) else []


def assignment(playbook: Playbook, rule: Rule, profile: Mapping[str, Any]) -> dict[str, Any]:
    """What is kept with a customer: the rule, why, and the actions it gives, with the
    products to offer when the rule recommends products (None when it does not)."""
    return {
        "rule": rule.name,
        "reason": rule.reason,
        "service_level": rule.service_level,
        "sla_hours": playbook.sla_hours[rule.service_level],
        "account_manager": rule.account_manager,
        "channel": rule.contact.channel if rule.contact else None,
        "every_days": rule.contact.every_days if rule.contact else None,
        "offer": {rule.offer.kind: rule.offer.value} if rule.offer else None,
        "recommend_products": rule.recommend_products,
        "recommended_products": recommended_products(profile) if rule.recommend_products else None,
        "task": rule.task.reason if rule.task else None,
        "playbook": playbook.digest,
    }


class _Counter:
    def __init__(self, names: Sequence[str]) -> None:
        self.customers = dict.fromkeys(names, 0)
        self.created = dict.fromkeys(names, 0)
        self.open = dict.fromkeys(names, 0)

    def task(self, name: str, created: bool) -> None:
        (self.created if created else self.open)[name] += 1

    def outcome(self, name: str) -> RuleOutcome:
        return RuleOutcome(name, self.customers[name], self.created[name], self.open[name])


def _apply_batch(
    session: Session,
    viewer: Viewer,
    playbook: Playbook,
    run_id: str,
    after: str,
    now: datetime,
    counter: _Counter,
    users: set[str],
) -> tuple[str | None, int, int]:
    """Apply to the customers after `after`, one batch: (last id, customers, profiles updated)."""
    dialect = _dialect(session)
    index = rule_index(playbook, dialect).label("rule")
    flag = churn_flag(playbook, dialect).label("flag")
    rows = session.execute(
        scope(viewer, run_id=run_id)
        .with_only_columns(
            PublishedProfile.customer_id,
            PublishedProfile.account_manager,
            PublishedProfile.profile,
            index,
            flag,
        )
        .where(PublishedProfile.customer_id > after)
        .order_by(PublishedProfile.customer_id)
        .limit(BATCH)
    ).all()
    if not rows:
        return None, 0, 0
    changed: list[dict[str, Any]] = []
    for customer_id, manager, doc, i, flagged in rows:
        assignee = manager if manager in users else None
        rule = playbook.rules[i] if i is not None else None
        kept = assignment(playbook, rule, doc) if rule is not None else None
        if doc.get(PROFILE_KEY) != kept:
            new_doc = {k: v for k, v in doc.items() if k != PROFILE_KEY}
            if kept is not None:
                new_doc[PROFILE_KEY] = kept
            changed.append({"run_id": run_id, "customer_id": customer_id, "profile": new_doc})
        if rule is not None:
            counter.customers[rule.name] += 1
        if rule is not None and rule.task is not None:
            due = playbook.due_hours(rule)
            _, created = open_task(
                session,
                customer_id,
                rule.task.reason,
                rule=rule.name,
                assignee=assignee,
                queue=rule.task.queue,
                due_at=None if due is None else now + timedelta(hours=due),
                note=rule.reason,
                now=now,
            )
            counter.task(rule.name, created)
        elif flagged and playbook.churn_warning is not None:
            warning = playbook.churn_warning
            _, created = open_task(
                session,
                customer_id,
                warning.task.reason,
                rule=CHURN_WARNING_RULE,
                assignee=assignee,
                queue=warning.task.queue,
                due_at=now + timedelta(hours=playbook.churn_due_hours()),
                note=f"{CHURN_WARNING_RULE}: {warning.when_text}",
                now=now,
            )
            counter.task(CHURN_WARNING_RULE, created)
        if flagged:
            counter.customers[CHURN_WARNING_RULE] += 1
    if changed:
        session.execute(update(PublishedProfile), changed)
    return rows[-1][0], len(rows), len(changed)


def apply_playbook(
    store: Store,
    viewer: Viewer,
    playbook: Playbook,
    *,
    dry_run: bool = False,
    now: datetime | None = None,
) -> ApplyResult:
    """Apply `playbook` to every customer of the current run (admin, analyst).

    Tasks go to the customer's account manager when that is an enabled user, else only to
    the rule's queue. Batches of customers are committed one by one, so a long apply never holds
    the store's write lock for long; re-applying is safe (unchanged profiles are not rewritten,
    open tasks are not doubled). A dry run only counts.
    """
    require_operator(viewer, "apply the playbook")
    now = now or utcnow()
    names = [r.name for r in playbook.rules]
    counter = _Counter([*names, CHURN_WARNING_RULE])
    with store.read() as session:
        run = current_run(session)
        if run is None:
            return ApplyResult(
                None, playbook.digest, dry_run, 0, [], 0, counter.outcome(CHURN_WARNING_RULE), 0
            )
        run_id = run.run_id
        counts, flagged, _ = _tally(session, viewer, run_id, playbook)
        users = set(session.scalars(select(User.username).where(~User.disabled)))
    if dry_run:
        counter.customers.update({n: counts.get(i, 0) for i, n in enumerate(names)})
        counter.customers[CHURN_WARNING_RULE] = flagged
    updated, after = 0, ""
    while not dry_run:
        with store.write.begin() as session:
            last, _, changed = _apply_batch(
                session, viewer, playbook, run_id, after, now, counter, users
            )
        if last is None:
            break
        after, updated = last, updated + changed
    result = ApplyResult(
        run_id=run_id,
        digest=playbook.digest,
        dry_run=dry_run,
        customers=sum(counts.values()),
        rules=[counter.outcome(n) for n in names],
        unmatched=counts.get(None, 0),
        churn_warnings=counter.outcome(CHURN_WARNING_RULE),
        profiles_updated=updated,
    )
    if not dry_run:
        with store.write.begin() as session:
            audit(
                session,
                viewer.username,
                "playbook_apply",
                f"run:{run_id}",
                playbook=playbook.digest,
                source=playbook.source,
                rules={r.name: r.customers for r in result.rules},
                tasks_created=result.tasks_created,
                profiles_updated=updated,
            )
    return result


def apply_configured(
    settings: Settings, store: Store, viewer: Viewer, *, dry_run: bool = False
) -> tuple[Playbook, ApplyResult]:
    """Apply the configured playbook; the role is checked before the file is read."""
    require_operator(viewer, "apply the playbook")
    playbook = load_playbook(settings)
    return playbook, apply_playbook(store, viewer, playbook, dry_run=dry_run)
