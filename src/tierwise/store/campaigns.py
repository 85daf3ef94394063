"""Campaigns and their members, each in the treatment or the control arm.

The arms are fixed when the campaign is created and never change: the effect report compares
exactly the groups that were (and were not) contacted.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from tierwise.core.errors import NotFoundError
from tierwise.store.models import Campaign, CampaignArm, CampaignMember

_BATCH = 5_000


def create_campaign(
    session: Session, members: Iterable[tuple[str, str]], **fields: Any
) -> Campaign:
    """Insert a campaign and its (customer_id, arm) members."""
    campaign = Campaign(**fields)
    session.add(campaign)
    session.flush()
    batch: list[dict[str, Any]] = []
    for customer_id, arm in members:
        batch.append(
            {
                "campaign_id": campaign.id,
                "customer_id": customer_id,
                "arm": CampaignArm(arm).value,
            }
        )
        if len(batch) >= _BATCH:
            session.execute(insert(CampaignMember), batch)
            batch = []
    if batch:
        session.execute(insert(CampaignMember), batch)
    session.flush()
    return campaign


def get_campaign(session: Session, campaign_id: int) -> Campaign:
    campaign = session.get(Campaign, campaign_id)
    if campaign is None:
        raise NotFoundError(f"no campaign {campaign_id}")
    return campaign


def arm_sizes(session: Session, campaign_ids: list[int]) -> dict[int, dict[str, int]]:
    """Members per arm of each campaign (arms without members are 0)."""
    sizes = {cid: dict.fromkeys((a.value for a in CampaignArm), 0) for cid in campaign_ids}
    rows = session.execute(
        select(CampaignMember.campaign_id, CampaignMember.arm, func.count())
        .where(CampaignMember.campaign_id.in_(campaign_ids))
        .group_by(CampaignMember.campaign_id, CampaignMember.arm)
    )
    for campaign_id, arm, count in rows:
        sizes[campaign_id][arm] = count
    return sizes


def member_arms(session: Session, campaign_id: int) -> dict[str, str]:
    """customer_id -> arm."""
    rows = session.execute(
        select(CampaignMember.customer_id, CampaignMember.arm).where(
            CampaignMember.campaign_id == campaign_id
        )
    )
    return dict(rows.all())
