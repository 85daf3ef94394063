"""Campaigns: a target list drawn from the viewer's customers, an action, and a random control
group that is not contacted; after the window, the effect report from warehouse orders.

The target list is the customers of the current run matching a filter through `access.scope`,
minus those the campaign's purpose may not reach (marketing: no consent, opted out, erased;
service: erased), *before* randomising, so both arms come from the same eligible population.
The control group is drawn by hashing (seed, customer id) (`strategy.effect`), so it is
reproducible from the seed alone. Exports hold the treatment arm only, gated again at export time
and masked for the viewer like every customer export.

Admins and analysts see every campaign, managers the ones they created; agents none.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import date, datetime
from pathlib import Path
from typing import Any, Literal

import ibis
import pyarrow as pa
from sqlalchemy import ColumnElement, false, select, true
from sqlalchemy.orm import Session, defer

from tierwise.core.errors import (
    ConflictError,
    InvalidInputError,
    PermissionDeniedError,
)
from tierwise.core.settings import Settings
from tierwise.engine.staging import end_of
from tierwise.services.access import PII_READ, Viewer, can, for_viewer, scope
from tierwise.services.export import neutralise
from tierwise.services.exports import FORMATS, SCHEMA, ExportResult, Purpose, _Gate, _sha256, _write
from tierwise.services.serving import SUMMARY_FIELDS, CustomerFilter, Store, filtered
from tierwise.services.tasks import not_found
from tierwise.services.warehouse import connect
from tierwise.store.audit import audit
from tierwise.store.campaigns import arm_sizes, member_arms
from tierwise.store.campaigns import create_campaign as insert_campaign
from tierwise.store.models import (
    Campaign,
    CampaignArm,
    CampaignMember,
    CampaignPurpose,
    PublishedProfile,
    Role,
)
from tierwise.store.publish import current_run
from tierwise.strategy.effect import (
    DEFAULT_CONTROL_SHARE,
    EffectReport,
    Outcome,
    effect_report,
    in_control,
)

CAMPAIGN_ROLES = frozenset({Role.ADMIN.value, Role.ANALYST.value, Role.MANAGER.value})
_BATCH = 5_000

Phase = Literal["planned", "running", "ended"]


def _gate_purpose(purpose: str) -> Purpose:
    return "marketing" if purpose == CampaignPurpose.MARKETING else "analysis"


def _visible(viewer: Viewer) -> ColumnElement[bool]:
    if viewer.role in (Role.ADMIN, Role.ANALYST):
        return true()
    if viewer.role == Role.MANAGER:
        return Campaign.created_by == viewer.username
    return false()


def _require_campaign_role(viewer: Viewer) -> None:
    if viewer.role not in CAMPAIGN_ROLES:
        raise PermissionDeniedError(f"role {viewer.role!r} may not work with campaigns")


@dataclass(frozen=True)
class CampaignSpec:
    name: str
    action: str
    starts_on: date
    ends_on: date
    where: CustomerFilter = field(default_factory=CustomerFilter)
    purpose: str = CampaignPurpose.MARKETING.value
    control_share: float = DEFAULT_CONTROL_SHARE
    seed: str | None = None
    """None: a random seed, stored with the campaign."""
    cost_per_contact: float = 0.0
    margin_rate: float = 1.0


@dataclass(frozen=True)
class CampaignView:
    id: int
    name: str
    action: str
    purpose: str
    filters: dict[str, Any]
    run_id: str
    starts_on: date
    ends_on: date
    phase: Phase
    control_share: float
    seed: str
    cost_per_contact: float
    margin_rate: float
    created_by: str
    created_at: datetime
    treatment: int
    control: int


def _phase(c: Campaign, today: date) -> Phase:
    if today < c.starts_on:
        return "planned"
    return "running" if today <= c.ends_on else "ended"


def _view(c: Campaign, sizes: dict[str, int], today: date) -> CampaignView:
    return CampaignView(
        c.id,
        c.name,
        c.action,
        c.purpose,
        c.filters,
        c.run_id,
        c.starts_on,
        c.ends_on,
        _phase(c, today),
        c.control_share,
        c.seed,
        c.cost_per_contact,
        c.margin_rate,
        c.created_by,
        c.created_at,
        sizes.get(CampaignArm.TREATMENT.value, 0),
        sizes.get(CampaignArm.CONTROL.value, 0),
    )


def _check(spec: CampaignSpec) -> None:
    if spec.ends_on < spec.starts_on:
        raise InvalidInputError("the campaign must end on or after its start")
    if not 0 < spec.control_share < 1:
        raise InvalidInputError("control_share must be between 0 and 1")
    if spec.cost_per_contact < 0 or not 0 <= spec.margin_rate <= 1:
        raise InvalidInputError("cost_per_contact must be >= 0 and margin_rate within 0..1")
    try:
        CampaignPurpose(spec.purpose)
    except ValueError:
        raise InvalidInputError("purpose must be marketing or service") from None


def create_campaign(
    store: Store, viewer: Viewer, spec: CampaignSpec, *, today: date | None = None
) -> CampaignView:
    """Draw the target list from the viewer's customers and split it into the two arms."""
    _require_campaign_role(viewer)
    _check(spec)
    seed = spec.seed or secrets.token_hex(8)
    with store.write.begin() as session:
        run = current_run(session)
        if run is None:
            raise ConflictError("no published run to draw a target list from: run `tierwise run`")
        gate = _Gate(session, _gate_purpose(spec.purpose))
        query = (
            filtered(viewer, run.run_id, spec.where)
            .options(defer(PublishedProfile.profile))
            .order_by(PublishedProfile.customer_id)
        )
        members = [
            (p.customer_id, _arm(seed, p.customer_id, spec.control_share))
            for p in session.scalars(query)
            if gate.admits(p)
        ]
        if not members:
            raise ConflictError("no customer the campaign may reach matches the filter")
        filters = {k: v for k, v in asdict(spec.where).items() if v is not None}
        campaign = insert_campaign(
            session,
            members,
            name=spec.name,
            action=spec.action,
            purpose=spec.purpose,
            filters=filters,
            run_id=run.run_id,
            starts_on=spec.starts_on,
            ends_on=spec.ends_on,
            control_share=spec.control_share,
            seed=seed,
            cost_per_contact=spec.cost_per_contact,
            margin_rate=spec.margin_rate,
            created_by=viewer.username,
        )
        sizes = arm_sizes(session, [campaign.id])[campaign.id]
        audit(
            session,
            viewer.username,
            "campaign_create",
            f"campaign:{campaign.id}",
            run_id=run.run_id,
            filters={k: v for k, v in filters.items() if k != "q"},
            searched=spec.where.q is not None,
            purpose=spec.purpose,
            treatment=sizes[CampaignArm.TREATMENT.value],
            control=sizes[CampaignArm.CONTROL.value],
        )
        return _view(campaign, sizes, today or date.today())


def _arm(seed: str, customer_id: str, share: float) -> str:
    control = in_control(seed, customer_id, share)
    return (CampaignArm.CONTROL if control else CampaignArm.TREATMENT).value


def list_campaigns(
    store: Store, viewer: Viewer, *, today: date | None = None
) -> list[CampaignView]:
    """Newest first."""
    _require_campaign_role(viewer)
    with store.read() as session:
        rows = session.scalars(
            select(Campaign).where(_visible(viewer)).order_by(Campaign.id.desc())
        ).all()
        sizes = arm_sizes(session, [c.id for c in rows])
        return [_view(c, sizes[c.id], today or date.today()) for c in rows]


def _visible_campaign(session: Session, viewer: Viewer, campaign_id: int) -> Campaign | None:
    return session.scalar(select(Campaign).where(Campaign.id == campaign_id, _visible(viewer)))


def _campaign(store: Store, viewer: Viewer, campaign_id: int) -> Campaign:
    _require_campaign_role(viewer)
    with store.read() as session:
        campaign = _visible_campaign(session, viewer, campaign_id)
        if campaign is not None:
            return campaign
        exists = session.get(Campaign, campaign_id) is not None
    raise not_found(store, viewer, f"campaign:{campaign_id}", exists)


def get_campaign(
    store: Store, viewer: Viewer, campaign_id: int, *, today: date | None = None
) -> CampaignView:
    campaign = _campaign(store, viewer, campaign_id)
    with store.read() as session:
        sizes = arm_sizes(session, [campaign_id])[campaign_id]
    return _view(campaign, sizes, today or date.today())


# --- export -------------------------------------------------------------------------------


def _treatment_batches(
    session: Session, viewer: Viewer, campaign: Campaign, run_id: str | None
) -> Iterator[pa.Table]:
    if run_id is None:
        return
    gate = _Gate(session, _gate_purpose(campaign.purpose))
    treated = select(CampaignMember.customer_id).where(
        CampaignMember.campaign_id == campaign.id,
        CampaignMember.arm == CampaignArm.TREATMENT.value,
    )
    query = (
        scope(viewer, run_id=run_id)
        .where(PublishedProfile.customer_id.in_(treated.scalar_subquery()))
        .options(defer(PublishedProfile.profile))
        .order_by(PublishedProfile.customer_id)
        .execution_options(yield_per=_BATCH)
    )
    rows: list[dict[str, Any]] = []
    for profile in session.scalars(query):
        if gate.admits(profile):
            rows.append(for_viewer(viewer, {f: getattr(profile, f) for f in SUMMARY_FIELDS}))
        if len(rows) >= _BATCH:
            yield neutralise(pa.Table.from_pylist(rows, schema=SCHEMA))
            rows = []
    if rows:
        yield neutralise(pa.Table.from_pylist(rows, schema=SCHEMA))


def export_campaign(store: Store, viewer: Viewer, campaign_id: int, out: Path) -> ExportResult:
    """The treatment arm, as the viewer may read it, for a CRM or marketing tool (.csv, .xlsx).

    Consent and suppression are checked again now: someone who opted out since the campaign
    was created is left out (and stays in the treatment arm for the effect report, which
    measures the intention to treat)."""
    campaign = _campaign(store, viewer, campaign_id)
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise InvalidInputError(f"{out.name}: export a campaign as .csv or .xlsx")
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial" + suffix)
    try:
        with store.read() as session:
            run = current_run(session)
            run_id = run.run_id if run else None
            rows = _write(_treatment_batches(session, viewer, campaign, run_id), partial)
        partial.replace(out)
    finally:
        partial.unlink(missing_ok=True)
    result = ExportResult(out, run_id, rows, _sha256(out))
    with store.write.begin() as session:
        audit(
            session,
            viewer.username,
            "export",
            f"campaign:{campaign_id}",
            run_id=run_id,
            purpose=_gate_purpose(campaign.purpose),
            format=suffix[1:],
            fields=list(SCHEMA.names),
            masked=not can(viewer, PII_READ),
            rows=rows,
            sha256=result.sha256,
        )
    return result


# --- effect ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CampaignEffect:
    campaign: CampaignView
    complete: bool
    """False while the window is still open (a report then is an interim look)."""
    report: EffectReport


def _outcomes(
    settings: Settings, arms: dict[str, str], starts_on: date, ends_on: date
) -> dict[str, Outcome]:
    """Orders and revenue of each member within the window, from the warehouse."""
    con = connect(settings)
    try:
        if "orders" not in con.list_tables():
            raise ConflictError("no orders in the warehouse to measure the campaign against")
        o = con.table("orders")
        o = o.filter(
            o.ordered_at >= datetime.combine(starts_on, datetime.min.time()),
            o.ordered_at < end_of(ends_on),
        )
        members = ibis.memtable(pa.table({"_cid": pa.array(list(arms), pa.string())}))
        joined = o.join(members, o.customer_id == members._cid)
        per_customer = joined.group_by("customer_id").aggregate(
            orders=joined.order_id.nunique(), revenue=joined.amount.sum()
        )
        rows = per_customer.to_pyarrow().to_pylist()
    finally:
        con.disconnect()
    found = {r["customer_id"]: Outcome(int(r["orders"]), float(r["revenue"] or 0)) for r in rows}
    return {cid: found.get(cid, Outcome(0, 0.0)) for cid in arms}


def campaign_effect(
    settings: Settings,
    store: Store,
    viewer: Viewer,
    campaign_id: int,
    *,
    confidence: float = 0.95,
    interim: bool = False,
    today: date | None = None,
) -> CampaignEffect:
    """Treated vs control retention, orders and revenue in the window, with confidence
    intervals, incremental revenue and ROI. Before the window ends, only with `interim`."""
    today = today or date.today()
    campaign = _campaign(store, viewer, campaign_id)
    complete = today > campaign.ends_on
    if not complete and not interim:
        raise ConflictError(
            f"campaign {campaign_id} runs until {campaign.ends_on}; "
            "ask for an interim report to look before"
        )
    if not 0 < confidence < 1:
        raise InvalidInputError("confidence must be between 0 and 1")
    with store.read() as session:
        arms = member_arms(session, campaign_id)
    outcomes = _outcomes(settings, arms, campaign.starts_on, campaign.ends_on)
    treated = [o for cid, o in outcomes.items() if arms[cid] == CampaignArm.TREATMENT]
    control = [o for cid, o in outcomes.items() if arms[cid] == CampaignArm.CONTROL]
    report = effect_report(
        treated,
        control,
        cost=campaign.cost_per_contact * len(treated),
        margin_rate=campaign.margin_rate,
        confidence=confidence,
    )
    sizes = {CampaignArm.TREATMENT.value: len(treated), CampaignArm.CONTROL.value: len(control)}
    return CampaignEffect(_view(campaign, sizes, today), complete, report)
