"""All configuration in one pydantic-settings class: tierwise.toml, overridden by TIERWISE_* vars.

Nested keys use a double underscore in the environment: TIERWISE_WAREHOUSE__PATH=/data/w.duckdb.
Relative paths are relative to the directory of the tierwise.toml that names them.
"""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from tierwise.core.contracts import TABLES
from tierwise.core.errors import ConfigError
from tierwise.core.schemes import BUILTIN_SCHEMES, SegmentRule, check_scheme

CONFIG_NAME = "tierwise.toml"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WarehouseSettings(_Section):
    engine: Literal["duckdb", "pyspark"] = "duckdb"
    path: Path = Path("warehouse.duckdb")
    """DuckDB file, or the Spark SQL warehouse directory."""
    spark_master: str = "local[2]"
    memory_limit: str = Field("2GB", pattern=r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
    """DuckDB's memory cap; larger work spills to disk next to the warehouse file."""


class StoreSettings(_Section):
    url: str = "sqlite:///tierwise.db"


class SourceSettings(_Section):
    """Where one canonical table comes from, and how its columns are named there."""

    path: str | None = None
    """A file or a glob (data/orders_*.csv); relative to tierwise.toml."""
    format: Literal["auto", "csv", "xlsx", "parquet", "table"] = "auto"
    encoding: Literal["auto", "utf-8", "utf-8-sig", "gb18030"] = "auto"
    delimiter: str = Field(",", min_length=1, max_length=1)
    sheet: str | None = None
    connection: str | None = None
    """An Ibis connection URL (postgres://…, sqlite:///…) when format = "table"."""
    table: str | None = None
    columns: dict[str, str] = {}
    """Canonical name -> source column name; unmapped canonical names are looked up as-is."""

    @model_validator(mode="after")
    def _one_origin(self) -> SourceSettings:
        if self.format == "table" or self.connection:
            if not (self.connection and self.table):
                raise ValueError("a database source needs both `connection` and `table`")
        elif not self.path:
            raise ValueError("a file source needs `path`")
        return self


class ScoringSettings(_Section):
    as_of: date | None = None
    """Inclusive end of observation; empty = date of the latest order."""
    score_method: Literal["quantile", "fixed"] = "quantile"
    recency_days_cuts: list[int] = [30, 90, 180, 365]
    """Fixed method: recency ≤ 30 days scores 5, ≤ 90 scores 4, … above 365 scores 1."""
    orders_cuts: list[int] = [1, 2, 4, 8]
    """Fixed method: orders ≤ 1 scores 1, ≤ 2 scores 2, … above 8 scores 5."""
    revenue_cuts: list[float] = [100, 300, 1000, 3000]
    """Fixed method: revenue ≤ 100 scores 1, … above 3000 scores 5."""
    segment_scheme: str = "rf10"
    schemes: dict[str, list[SegmentRule]] = {}
    """Custom schemes: ordered rule tables, first match wins."""
    class8_method: Literal["mean", "median", "fixed"] = "mean"
    class8_recency_days: float = 90
    class8_orders: float = 2
    class8_revenue: float = 500
    abc_cuts: tuple[float, float] = (0.70, 0.90)
    value_tier_shares: tuple[float, float] = (0.20, 0.30)
    """High = top 20 %, mid = next 30 %, low = the rest."""
    margin_rate: float = Field(1.0, ge=0, le=1)
    """Gross margin rate used when orders carry no cost."""

    @model_validator(mode="after")
    def _consistent(self) -> ScoringSettings:
        for name, cuts in (
            ("recency_days_cuts", self.recency_days_cuts),
            ("orders_cuts", self.orders_cuts),
            ("revenue_cuts", self.revenue_cuts),
        ):
            if len(cuts) != 4 or list(cuts) != sorted(set(cuts)):
                raise ValueError(f"{name} needs 4 strictly increasing numbers")
        a, b = self.abc_cuts
        if not 0 < a < b <= 1:
            raise ValueError("abc_cuts must satisfy 0 < A cut < B cut <= 1")
        h, m = self.value_tier_shares
        if not (h > 0 and m >= 0 and h + m <= 1):
            raise ValueError("value_tier_shares must be two shares that add up to at most 1")
        for name, rules in self.schemes.items():
            if name in BUILTIN_SCHEMES:
                raise ValueError(f"scheme name {name!r} is built in; choose another")
            check_scheme(name, rules)
        if self.segment_scheme not in BUILTIN_SCHEMES | self.schemes:
            raise ValueError(f"segment_scheme {self.segment_scheme!r} is not defined")
        return self

    def scheme_rules(self) -> list[SegmentRule]:
        return (BUILTIN_SCHEMES | self.schemes)[self.segment_scheme]


class LifecycleSettings(_Section):
    """Stage thresholds (DESIGN.md), in days unless named a factor."""

    new_days: int = Field(30, gt=0)
    churn_days: int = Field(180, gt=0)
    loyal_min_orders: int = Field(4, gt=0)
    loyal_min_tenure_days: int = Field(180, ge=0)
    dormant_cadence_factor: float = Field(2.0, gt=0)
    """Dormant when recency exceeds this many expected intervals between orders."""
    churn_cadence_factor: float = Field(4.0, gt=0)
    """Churned when recency exceeds this many expected intervals (or churn_days)."""
    min_dormant_days: int = Field(30, ge=0)
    """Never dormant before this many days without an order, however fast the cadence."""
    reactivated_days: int = Field(90, gt=0)
    """A returning customer stays `reactivated` this long after the return order."""

    @model_validator(mode="after")
    def _ordered(self) -> LifecycleSettings:
        if self.churn_cadence_factor <= self.dormant_cadence_factor:
            raise ValueError("churn_cadence_factor must exceed dormant_cadence_factor")
        return self


class ModelSettings(_Section):
    enabled: bool = True
    purchase_model: Literal["bgnbd", "paretonbd", "mbgnbd"] = "bgnbd"
    horizon_days: int = Field(365, gt=0)
    discount_rate_monthly: float = Field(0.01, ge=0, lt=1)
    churn_window_days: int = Field(90, gt=0)
    churn_risk_cuts: tuple[float, float] = (0.3, 0.6)
    """churn_probability below 0.3 is low risk, below 0.6 medium, else high."""


class MembershipLevel(_Section):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")
    name: str = Field(min_length=1, max_length=32)
    """Shown to people, e.g. 银卡."""
    min_value: float = Field(ge=0)
    """Rolling spend (or points) from which a customer holds this level."""


def _default_levels() -> list[MembershipLevel]:
    return [
        MembershipLevel(code="regular", name="普通", min_value=0),
        MembershipLevel(code="silver", name="银卡", min_value=1_000),
        MembershipLevel(code="gold", name="金卡", min_value=5_000),
        MembershipLevel(code="diamond", name="钻石", min_value=20_000),
    ]


class MembershipSettings(_Section):
    """Membership levels (会员等级): upgrades at once, downgrades only after a review date."""

    enabled: bool = True
    """Evaluate levels after every run."""
    basis: Literal["spend", "points"] = "spend"
    window_days: int = Field(365, gt=0)
    """Rolling window of net spend (returns count against it), ending at as_of."""
    points_per_unit: float = Field(1.0, ge=0)
    """Points basis: points per currency unit of net spend in the window ..."""
    points_per_order: float = Field(0.0, ge=0)
    """... plus points per order."""
    levels: list[MembershipLevel] = Field(default_factory=_default_levels)
    review_dates: list[str] = ["01-01"]
    """MM-DD each year: a customer below their level is reviewed (then graced) only then."""
    grace_days: int = Field(30, ge=0)
    """Days after a missed review before the downgrade; re-qualifying meanwhile keeps the level."""

    @model_validator(mode="after")
    def _consistent(self) -> MembershipSettings:
        if not self.levels or self.levels[0].min_value != 0:
            raise ValueError("levels must start with a level of min_value 0")
        mins = [level.min_value for level in self.levels]
        if mins != sorted(set(mins)):
            raise ValueError("levels need strictly increasing min_value")
        if len({level.code for level in self.levels}) != len(self.levels):
            raise ValueError("level codes must be unique")
        if not self.review_dates:
            raise ValueError("review_dates needs at least one MM-DD date")
        for text in self.review_dates:
            try:
                date.fromisoformat(f"2001-{text}")  # not a leap year: 02-29 is refused
            except ValueError:
                raise ValueError(f"review date {text!r} is not MM-DD") from None
        return self


class TaskSettings(_Section):
    """Follow-up tasks (回访)."""

    due_hours: float = Field(72, gt=0)
    """Due time of a task created by hand without one."""
    churn_risks: list[Literal["low", "medium", "high"]] = ["high"]
    """Churn-risk levels whose customers get a churn follow-up task."""
    churn_due_hours: float = Field(48, gt=0)
    unassigned_queue: str = Field("unassigned", min_length=1, max_length=64)
    """Queue of tasks whose customer has no account manager with a sign-in."""
    escalation_queue: str = Field("escalations", min_length=1, max_length=64)
    """Where overdue tasks go when the assignee's team has no manager."""


ComplaintCategory = Literal["product", "delivery", "service", "billing", "other"]
COMPLAINT_CATEGORIES: tuple[str, ...] = get_args(ComplaintCategory)
"""A closed vocabulary, so a ticket's category means the same in every report."""


class ComplaintSettings(_Section):
    """Complaint service levels (hours from opening)."""

    first_response_hours: float = Field(4, gt=0)
    resolution_hours: float = Field(72, gt=0)
    category_sla: dict[ComplaintCategory, tuple[float, float]] = {}
    """Per category: (first response hours, resolution hours), overriding the defaults."""

    @model_validator(mode="after")
    def _consistent(self) -> ComplaintSettings:
        for name, (first, resolve) in self.category_sla.items():
            if not 0 < first <= resolve:
                raise ValueError(f"category_sla.{name}: need 0 < first response <= resolution")
        if self.first_response_hours > self.resolution_hours:
            raise ValueError("first_response_hours must not exceed resolution_hours")
        return self

    def sla_hours(self, category: str) -> tuple[float, float]:
        if category in self.category_sla:
            return self.category_sla[category]
        return self.first_response_hours, self.resolution_hours


class PlaybookSettings(_Section):
    path: Path | None = None
    """The playbook YAML (relative to tierwise.toml); empty = the shipped default playbook."""


class RecommendSettings(_Section):
    """Next-best products per customer, separately for repeat and new items (issue 8)."""

    enabled: bool = True
    n: int = Field(5, ge=1, le=50)
    """Products recommended per customer and kind (repeat, new) in a run."""
    models: list[
        Literal["buy_again", "popularity", "segment_popularity", "cooccurrence", "als"]
    ] = ["buy_again", "popularity", "segment_popularity", "cooccurrence", "als"]
    """Candidates; each run evaluates them and uses the best per kind."""
    metric: Literal["precision", "recall", "ndcg", "hit_rate"] = "recall"
    k: int = Field(10, ge=1, le=100)
    """The evaluation's cut-off rank: models are compared on `metric`@k."""
    cutoff_days: int = Field(60, gt=0)
    """Evaluation trains on orders up to as_of − cutoff_days and tests on the days after."""
    eval_customers: int = Field(20_000, ge=100)
    """Test customers scored in the evaluation; more are sampled down to this (by id hash)."""
    half_life_days: float = Field(90, gt=0)
    """Recency decay of purchase weights: a purchase this old counts half."""
    exclude_products: list[str] = []
    """Product ids never recommended (discontinued, restricted, …)."""
    exclude_categories: list[str] = []
    neighbours: int = Field(50, ge=1, le=1000)
    """Co-occurrence: similar products kept per product."""
    als_factors: int = Field(32, ge=2, le=512)
    als_iterations: int = Field(15, ge=1, le=200)
    als_regularization: float = Field(0.05, ge=0)
    als_alpha: float = Field(10.0, gt=0)
    """ALS confidence = 1 + alpha × decayed purchase weight."""


class BehaviourSettings(_Section):
    """Basket association rules and behaviour clusters computed by runs (issue 8)."""

    enabled: bool = True
    rules_min_orders: int = Field(5, ge=1)
    """A product pair must be bought together in at least this many orders to make a rule."""
    rules_min_confidence: float = Field(0.01, ge=0, le=1)
    rules_max: int = Field(1000, ge=1)
    """Rules kept per run, highest lift first."""
    clusters_k: tuple[int, int] = (2, 8)
    """Smallest and largest number of behaviour clusters tried (best silhouette wins)."""
    clusters_sample: int = Field(20_000, ge=100)

    @model_validator(mode="after")
    def _k_range(self) -> BehaviourSettings:
        if not 2 <= self.clusters_k[0] <= self.clusters_k[1]:
            raise ValueError("clusters_k must be [smallest, largest] with 2 <= smallest <= largest")
        return self


class Settings(BaseSettings):
    """The whole configuration. Build it with `Settings.load(path)`."""

    model_config = SettingsConfigDict(
        env_prefix="TIERWISE_", env_nested_delimiter="__", extra="forbid"
    )

    root: Path = Path()
    """Directory of the loaded tierwise.toml; relative paths resolve against it."""
    business_timezone: str = "Asia/Shanghai"
    """Timestamps with an offset are converted to this zone; naive ones are kept as they are."""
    warehouse: WarehouseSettings = WarehouseSettings()
    store: StoreSettings = StoreSettings()
    sources: dict[str, SourceSettings] = {}
    scoring: ScoringSettings = ScoringSettings()
    lifecycle: LifecycleSettings = LifecycleSettings()
    models: ModelSettings = ModelSettings()
    recommend: RecommendSettings = RecommendSettings()
    behaviour: BehaviourSettings = BehaviourSettings()
    playbook: PlaybookSettings = PlaybookSettings()
    membership: MembershipSettings = MembershipSettings()
    tasks: TaskSettings = TaskSettings()
    complaints: ComplaintSettings = ComplaintSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)

    @model_validator(mode="after")
    def _known_tables(self) -> Settings:
        for table, src in self.sources.items():
            if table not in TABLES:
                raise ValueError(f"sources.{table}: unknown table; known: {', '.join(TABLES)}")
            unknown = set(src.columns) - set(TABLES[table].names)
            if unknown:
                raise ValueError(
                    f"sources.{table}.columns: {', '.join(sorted(unknown))} "
                    f"not canonical columns of {table}"
                )
        return self

    @classmethod
    def load(cls, path: Path | str | None = None, **overrides: Any) -> Settings:
        """Read tierwise.toml (or only env/defaults when it is absent and none was asked for)."""
        file = Path(path) if path else Path(CONFIG_NAME)
        data: dict[str, Any] = {}
        if file.exists():
            try:
                data = tomllib.loads(file.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(f"{file}: {e}") from None
        elif path:
            raise ConfigError(f"{file}: no such configuration file (create one: tierwise init DIR)")
        data.update(overrides)
        data.setdefault("root", file.resolve().parent)
        try:
            return cls(**data)
        except ValidationError as e:
            raise ConfigError(_explain(e, file)) from None

    def resolve(self, p: Path | str) -> Path:
        p = Path(p).expanduser()
        return p if p.is_absolute() else self.root / p


def _explain(e: ValidationError, file: Path) -> str:
    """One line per problem, naming the dotted key and the file."""
    lines = []
    for err in e.errors():
        loc = ".".join(str(x) for x in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        lines.append(f"{file}: {loc or '(top level)'}: {msg}")
    return "\n".join(lines)
