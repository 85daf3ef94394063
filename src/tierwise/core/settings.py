"""All configuration in one pydantic-settings class: tierwise.toml, overridden by TIERWISE_* vars.

Nested keys use a double underscore in the environment: TIERWISE_WAREHOUSE__PATH=/data/w.duckdb.
Relative paths are relative to the directory of the tierwise.toml that names them.
"""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path
from typing import Any, Literal

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
