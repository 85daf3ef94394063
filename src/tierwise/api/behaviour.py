"""Recommendations and behaviour patterns: a customer's next-best products, a segment's top
products and habits, basket association rules and behaviour clusters.

Routes translate HTTP to `services.behaviour`; scoping happens there (a customer outside the
caller's scope is a 404; segment views count only the customers the caller may see). Rules,
clusters and the recommender evaluation describe the whole run, without customer rows.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import Field

from tierwise.api.auth import SettingsDep, StoreDep, UserDep, current_user
from tierwise.api.schemas import PLAIN_TEXT, ErrorOut, Input, Output
from tierwise.core.errors import NotFoundError
from tierwise.services import behaviour
from tierwise.services.behaviour import Dimension

router = APIRouter(responses={401: {"model": ErrorOut}, 403: {"model": ErrorOut}})

CustomerId = Annotated[str, Path(min_length=1, max_length=128, pattern=PLAIN_TEXT)]
SegmentKey = Annotated[str, Path(min_length=1, max_length=64, pattern=PLAIN_TEXT)]


# --- schemas --------------------------------------------------------------------------------


class Recommendation(Output):
    product_id: str
    title: str | None = Field(None, description="The product's name in the catalogue.")
    category: str | None = None
    kind: str = Field(description="repeat (bought before) or new.")
    rank: int
    score: float | None = None
    reason: str = Field(
        description="bought_often, popular, popular_in_segment, bought_with "
        "(see related_product_id) or customers_like_you."
    )
    related_product_id: str | None = None
    related_title: str | None = None


class CustomerRecommendations(Output):
    run_id: str
    customer_id: str
    behaviour_cluster: str | None
    repeat: list[Recommendation]
    new: list[Recommendation]


class SegmentProduct(Output):
    rank: int
    product_id: str
    title: str | None
    category: str | None
    customers: int = Field(description="Customers of the segment who bought it.")
    orders: int
    revenue: float
    order_share: float = Field(description="Share of the segment's orders holding it.")


class SegmentScope(Output):
    run_id: str | None
    as_of: date | None
    dimension: str
    key: str
    customers: int = Field(description="Customers of the segment the caller may see.")
    since: date | None = Field(description="Exclusive start of the period looked at.")


class SegmentProducts(SegmentScope):
    products: list[SegmentProduct]


class HeatCell(Output):
    weekday: int = Field(description="0 = Monday.")
    hour: int
    orders: int
    customers: int


class Preference(Output):
    value: str
    customers: int
    orders: int
    revenue: float
    order_share: float


class Funnel(Output):
    days: int
    viewers: int = Field(description="Customers who viewed a product.")
    carters: int = Field(description="Viewers who also added to a cart.")
    buyers: int = Field(description="Carters who also ordered.")
    ordering_customers: int
    views: int
    carts: int
    orders: int


class SegmentBehaviour(SegmentScope):
    heatmap: list[HeatCell]
    categories: list[Preference]
    channels: list[Preference]
    funnel: Funnel | None


class Rule(Output):
    antecedent: str
    consequent: str
    antecedent_title: str | None = None
    consequent_title: str | None = None
    baskets: int = Field(description="Orders holding both.")
    antecedent_baskets: int
    consequent_baskets: int
    support: float
    confidence: float
    lift: float


class RuleTable(Output):
    run_id: str | None
    rules: list[Rule]


class ClusterTable(Output):
    run_id: str | None
    k: int | None
    features: list[str]
    clusters: list[dict[str, Any]] = Field(
        description="cluster, customers, share, label and the distinguishing features "
        "(feature, z in standard deviations, cluster and overall means)."
    )


class SegmentQuery(Input):
    days: int = Field(365, ge=1, le=3650, description="Look back this many days from as_of.")


class ProductsQuery(SegmentQuery):
    n: int = Field(10, ge=1, le=100)


class BehaviourQuery(SegmentQuery):
    funnel_days: int = Field(90, ge=1, le=3650)


class RuleQuery(Input):
    product_id: str | None = Field(
        None, min_length=1, max_length=128, pattern=PLAIN_TEXT, description="Antecedent."
    )
    min_lift: float = Field(0.0, ge=0, le=1e9)
    limit: int = Field(50, ge=1, le=1000)


class ModelScore(Output):
    model: str
    kind: str = Field(description="repeat or new items.")
    precision: float | None = Field(description="null: the model cannot rank this kind.")
    recall: float | None
    ndcg: float | None
    hit_rate: float | None
    customers: int = Field(description="Test customers who bought items of this kind.")
    coverage: float = Field(description="Share of the catalogue recommended to them.")
    fit_seconds: float


class Evaluation(Output):
    as_of: date
    cutoff: date = Field(description="Models were trained up to here and tested after.")
    k: int
    metric: str
    train_customers: int
    products: int
    test_customers: int
    scores: list[ModelScore]
    best: dict[str, str] = Field(description="Kind → best model by `metric`@k.")
    chosen: dict[str, str] = Field(description="Kind → model the run used.")
    skipped: dict[str, str]


# --- routes ---------------------------------------------------------------------------------


@router.get(
    "/customers/{customer_id}/recommendations",
    tags=["customers"],
    responses={404: {"model": ErrorOut}},
)
def customer_recommendations(
    customer_id: CustomerId, user: UserDep, store: StoreDep
) -> CustomerRecommendations:
    """Next-best products of one customer: repeat and new items, each with its reason."""
    return CustomerRecommendations.model_validate(
        behaviour.customer_recommendations(store, user, customer_id)
    )


@router.get("/segments/{dimension}/{key}/products", tags=["segments"])
def segment_products(
    dimension: Dimension,
    key: SegmentKey,
    query: Annotated[ProductsQuery, Query()],
    user: UserDep,
    store: StoreDep,
    settings: SettingsDep,
) -> SegmentProducts:
    """The products most of a segment's customers bought (only customers the caller sees)."""
    return SegmentProducts.model_validate(
        behaviour.segment_products(
            settings, store, user, dimension, key, n=query.n, days=query.days
        )
    )


@router.get("/segments/{dimension}/{key}/behaviour", tags=["segments"])
def segment_behaviour(
    dimension: Dimension,
    key: SegmentKey,
    query: Annotated[BehaviourQuery, Query()],
    user: UserDep,
    store: StoreDep,
    settings: SettingsDep,
) -> SegmentBehaviour:
    """Weekday × hour heatmap, category and channel preferences and the browse-to-buy funnel."""
    return SegmentBehaviour.model_validate(
        behaviour.segment_behaviour(
            settings,
            store,
            user,
            dimension,
            key,
            days=query.days,
            funnel_days=query.funnel_days,
        )
    )


@router.get("/association-rules", tags=["behaviour"], dependencies=[Depends(current_user)])
def association_rules(
    query: Annotated[RuleQuery, Query()], store: StoreDep, settings: SettingsDep
) -> RuleTable:
    """Products bought together (support, confidence, lift), strongest first."""
    return RuleTable.model_validate(
        behaviour.rules(
            settings,
            store,
            product_id=query.product_id,
            min_lift=query.min_lift,
            limit=query.limit,
        )
    )


@router.get("/behaviour/clusters", tags=["behaviour"], dependencies=[Depends(current_user)])
def behaviour_clusters(store: StoreDep, settings: SettingsDep) -> ClusterTable:
    """The run's behaviour clusters, each described by its distinguishing features."""
    return ClusterTable.model_validate(behaviour.clusters(settings, store))


@router.get(
    "/recommendations/evaluation",
    tags=["behaviour"],
    dependencies=[Depends(current_user)],
    responses={404: {"model": ErrorOut}},
)
def recommendation_evaluation(store: StoreDep, settings: SettingsDep) -> Evaluation:
    """The time-split evaluation the current run chose its recommenders by."""
    found = behaviour.evaluation(settings, store)
    if found is None:
        raise NotFoundError("the current run has no recommender evaluation")
    return Evaluation.model_validate(found)
