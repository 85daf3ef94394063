"""Closed vocabularies of Tierwise: codes stored in data, with English and Chinese labels."""

from __future__ import annotations

from enum import StrEnum


class Labeled(StrEnum):
    """A stored code with (en, zh-CN) display names.

    Labels are keyed by (enum, code): codes repeat across enums ("loyal" is a segment and a
    stage, "low" a tier and a risk) and StrEnum members with equal codes are equal dict keys."""

    @property
    def en(self) -> str:
        return LABELS[type(self), self.value][0]

    @property
    def zh(self) -> str:
        return LABELS[type(self), self.value][1]


class Segment(Labeled):
    """rf10 segments (DESIGN.md), plus `no_orders` for customers who never bought."""

    CHAMPIONS = "champions"
    LOYAL = "loyal"
    POTENTIAL_LOYALIST = "potential_loyalist"
    NEW = "new"
    PROMISING = "promising"
    NEED_ATTENTION = "need_attention"
    ABOUT_TO_SLEEP = "about_to_sleep"
    AT_RISK = "at_risk"
    CANT_LOSE = "cant_lose"
    HIBERNATING = "hibernating"
    NO_ORDERS = "no_orders"


class Class8(Labeled):
    """中国常用八类 RFM classes, named by (R, F, M) high/low."""

    IMPORTANT_VALUE = "important_value"
    IMPORTANT_DEVELOP = "important_develop"
    IMPORTANT_KEEP = "important_keep"
    IMPORTANT_RETAIN = "important_retain"
    GENERAL_VALUE = "general_value"
    GENERAL_DEVELOP = "general_develop"
    GENERAL_KEEP = "general_keep"
    GENERAL_RETAIN = "general_retain"


CLASS8_BY_RFM: dict[tuple[bool, bool, bool], Class8] = {
    (True, True, True): Class8.IMPORTANT_VALUE,
    (True, False, True): Class8.IMPORTANT_DEVELOP,
    (False, True, True): Class8.IMPORTANT_KEEP,
    (False, False, True): Class8.IMPORTANT_RETAIN,
    (True, True, False): Class8.GENERAL_VALUE,
    (True, False, False): Class8.GENERAL_DEVELOP,
    (False, True, False): Class8.GENERAL_KEEP,
    (False, False, False): Class8.GENERAL_RETAIN,
}


class AbcClass(Labeled):
    A = "A"
    B = "B"
    C = "C"


class ValueTier(Labeled):
    HIGH = "high"
    MID = "mid"
    LOW = "low"


class Stage(Labeled):
    """Lifecycle stages, in funnel order."""

    POTENTIAL = "potential"
    NEW = "new"
    ACTIVE = "active"
    LOYAL = "loyal"
    DORMANT = "dormant"
    CHURNED = "churned"
    REACTIVATED = "reactivated"


class ChurnRisk(Labeled):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


_LABELS: tuple[tuple[Labeled, tuple[str, str]], ...] = (
    (Segment.CHAMPIONS, ("Champions", "冠军客户")),
    (Segment.LOYAL, ("Loyal", "忠诚客户")),
    (Segment.POTENTIAL_LOYALIST, ("Potential loyalist", "潜力忠诚客户")),
    (Segment.NEW, ("New", "新客户")),
    (Segment.PROMISING, ("Promising", "有潜力客户")),
    (Segment.NEED_ATTENTION, ("Need attention", "需要关注客户")),
    (Segment.ABOUT_TO_SLEEP, ("About to sleep", "即将沉睡客户")),
    (Segment.AT_RISK, ("At risk", "有流失风险客户")),
    (Segment.CANT_LOSE, ("Can't lose", "不能失去的客户")),
    (Segment.HIBERNATING, ("Hibernating", "沉睡客户")),
    (Segment.NO_ORDERS, ("No orders", "未下单客户")),
    (Class8.IMPORTANT_VALUE, ("Important value", "重要价值客户")),
    (Class8.IMPORTANT_DEVELOP, ("Important develop", "重要发展客户")),
    (Class8.IMPORTANT_KEEP, ("Important keep", "重要保持客户")),
    (Class8.IMPORTANT_RETAIN, ("Important retain", "重要挽留客户")),
    (Class8.GENERAL_VALUE, ("General value", "一般价值客户")),
    (Class8.GENERAL_DEVELOP, ("General develop", "一般发展客户")),
    (Class8.GENERAL_KEEP, ("General keep", "一般保持客户")),
    (Class8.GENERAL_RETAIN, ("General retain", "一般挽留客户")),
    (AbcClass.A, ("A", "A 类")),
    (AbcClass.B, ("B", "B 类")),
    (AbcClass.C, ("C", "C 类")),
    (ValueTier.HIGH, ("High value", "高价值")),
    (ValueTier.MID, ("Mid value", "中价值")),
    (ValueTier.LOW, ("Low value", "低价值")),
    (Stage.POTENTIAL, ("Potential", "潜在")),
    (Stage.NEW, ("New", "新客")),
    (Stage.ACTIVE, ("Active", "活跃")),
    (Stage.LOYAL, ("Loyal", "忠诚")),
    (Stage.DORMANT, ("Dormant", "沉睡")),
    (Stage.CHURNED, ("Churned", "流失")),
    (Stage.REACTIVATED, ("Reactivated", "回流")),
    (ChurnRisk.LOW, ("Low", "低")),
    (ChurnRisk.MEDIUM, ("Medium", "中")),
    (ChurnRisk.HIGH, ("High", "高")),
)

LABELS: dict[tuple[type[Labeled], str], tuple[str, str]] = {
    (type(member), member.value): names for member, names in _LABELS
}

BY_COLUMN: dict[str, type[Labeled]] = {
    "rfm_segment": Segment,
    "rfm_class8": Class8,
    "abc_class": AbcClass,
    "value_tier": ValueTier,
    "lifecycle_stage": Stage,
    "churn_risk": ChurnRisk,
}
"""Which vocabulary a profile column's codes come from."""


def label(column: str, code: str | None, lang: str = "en") -> str:
    """Display name of a stored code; custom segment names and unknown codes show as they are."""
    if code is None:
        return "—"
    kind = BY_COLUMN.get(column)
    names = LABELS.get((kind, code)) if kind else None
    if names is None:
        return code
    return names[1] if lang.startswith("zh") else names[0]
