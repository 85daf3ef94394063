"""`tierwise generate`: realistic multi-table demo data whose latent truth is known."""

from __future__ import annotations

import csv
import json
import re
from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from tierwise.core.contracts import TABLES
from tierwise.core.settings import Settings
from tierwise.services.generate import POPULATION, generate

N = 2_000
END = date(2025, 3, 31)
LAST = pd.Timestamp(datetime(2025, 3, 31, 23, 59, 59))
FILES = (
    "customers.csv",
    "orders.parquet",
    "products.csv",
    "events.parquet",
    "interactions.csv",
    "feedback.csv",
    "costs.csv",
    "truth.parquet",
    "tierwise.toml",
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    calls: list[tuple[str, float]] = []
    result = generate(N, out, seed=3, end=END, progress=lambda s, f: calls.append((s, f)))
    return result, calls


@pytest.fixture(scope="module")
def out(demo) -> Path:
    return demo[0].out


@pytest.fixture(scope="module")
def orders(out) -> pd.DataFrame:
    return pq.read_table(out / "orders.parquet").to_pandas()


@pytest.fixture(scope="module")
def truth(out) -> pd.DataFrame:
    return pq.read_table(out / "truth.parquet").to_pandas()


def read_csv(path: Path, encoding: str = "utf-8") -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)


def read_any(out: Path, name: str) -> pd.DataFrame:
    encoding = {"customers": "gb18030", "products": "utf-8-sig"}.get(name, "utf-8")
    return read_csv(out / f"{name}.csv", encoding)


def test_same_seed_writes_byte_identical_files(out, tmp_path):
    again = generate(N, tmp_path / "again", seed=3, end=END)
    for name in FILES:
        assert (again.out / name).read_bytes() == (out / name).read_bytes(), name
    other = generate(N, tmp_path / "other", seed=4, end=END)
    assert (other.out / "orders.parquet").read_bytes() != (out / "orders.parquet").read_bytes()


def test_result_counts_rows_and_progress_runs_to_one(demo, out):
    result, calls = demo
    assert sorted(p.name for p in out.iterdir()) == sorted(FILES)
    assert result.config == out / "tierwise.toml"
    assert result.rows["customers"] == result.rows["truth"] == N
    for name, rows in result.rows.items():
        path = out / f"{name}.parquet"
        counted = pq.read_metadata(path).num_rows if path.exists() else len(read_any(out, name))
        assert counted == rows, name
    fractions = [f for _, f in calls]
    assert fractions[0] == 0.0 and fractions[-1] == 1.0
    assert fractions == sorted(fractions)


def test_file_encodings(out):
    customers = (out / "customers.csv").read_bytes()
    with pytest.raises(UnicodeDecodeError):
        customers.decode("utf-8")
    assert customers.decode("gb18030").startswith("客户编号,注册时间,姓名,手机号")
    products = (out / "products.csv").read_bytes()
    assert products.startswith(b"\xef\xbb\xbf")
    assert products[3:].decode("utf-8").startswith("product_id,name,category,brand,price\n")
    interactions = (out / "interactions.csv").read_bytes()
    assert interactions.decode("utf-8").startswith(
        "客户编号,发生时间,类型,渠道,结果,处理人,成本,解决时间"
    )
    for name in ("interactions", "feedback", "costs"):
        assert not (out / f"{name}.csv").read_bytes().startswith(b"\xef\xbb\xbf")


def test_identifiers_keep_leading_zeros_and_phones_mix_formats(out, orders, truth):
    with (out / "customers.csv").open(encoding="gb18030", newline="") as f:
        rows = list(csv.DictReader(f))
    ids = [r["客户编号"] for r in rows]
    assert all(re.fullmatch(r"0\d{6}", i) for i in ids)
    assert ids == sorted(ids) and ids[0] == "0000001" and len(set(ids)) == N
    assert set(orders["customer_id"]) <= set(ids)
    assert list(truth["customer_id"]) == ids
    phones = [r["手机号"] for r in rows]
    spaced = [p for p in phones if re.fullmatch(r"\+86 1\d\d \d{4} \d{4}", p)]
    plain = [p for p in phones if re.fullmatch(r"1\d{10}", p)]
    assert len(spaced) + len(plain) == N and spaced and plain
    assert len({p.replace(" ", "").removeprefix("+86") for p in phones}) == N
    assert re.fullmatch(r"SO\d{8}\d{7}", orders["order_id"].iloc[0])
    consent = pd.Series([r["营销同意"] for r in rows])
    assert set(consent) == {"是", "否"} and 0.7 < (consent == "是").mean() < 0.9
    assert {r["客户经理"] for r in rows} <= {f"am{i:03d}" for i in range(1, 41)}


def test_no_timestamp_after_end(out, orders, truth):
    times = [
        orders["ordered_at"],
        pq.read_table(out / "events.parquet").to_pandas()["occurred_at"],
        truth["registered_at"],
        truth["first_order_at"],
    ]
    customers = read_csv(out / "customers.csv", "gb18030")
    times.append(pd.to_datetime(customers["注册时间"], format="%Y/%m/%d %H:%M"))
    inter = read_csv(out / "interactions.csv")
    times += [
        pd.to_datetime(inter["发生时间"]),
        pd.to_datetime(inter["解决时间"].replace("", None)),
    ]
    times.append(pd.to_datetime(read_csv(out / "feedback.csv")["responded_at"]))
    times.append(pd.to_datetime(read_csv(out / "costs.csv")["incurred_at"]))
    for t in times:
        assert t.max() <= LAST
    assert orders["ordered_at"].max().date() >= date(2025, 3, 1)  # data runs up to the end
    assert orders["ordered_at"].min() >= pd.Timestamp(END) - pd.Timedelta(days=3 * 366)


def test_config_loads_and_maps_every_file(out):
    settings = Settings.load(out / "tierwise.toml")
    assert settings.warehouse.path == Path("warehouse.duckdb")
    assert settings.scoring.as_of == END
    assert set(settings.sources) == set(TABLES)
    for table, source in settings.sources.items():
        assert settings.resolve(source.path).exists(), table
        assert source.encoding == "auto"
    headers = {
        "customers": read_csv(out / "customers.csv", "gb18030").columns,
        "interactions": read_csv(out / "interactions.csv").columns,
    }
    for table, columns in headers.items():
        mapping = settings.sources[table].columns
        assert set(mapping) == set(TABLES[table].names)
        assert set(mapping.values()) <= set(columns)
    unmapped = set(headers["customers"]) - set(settings.sources["customers"].columns.values())
    assert unmapped == {"会员卡号", "备注"}
    for table in ("orders", "events", "products", "feedback", "costs"):
        path = settings.resolve(settings.sources[table].path)
        names = pq.read_schema(path).names if path.suffix == ".parquet" else read_any(out, table)
        assert list(names) == list(TABLES[table].names)


def test_order_lines_per_customer_and_returns(orders, truth):
    assert 7 <= len(orders) / N <= 13
    returns = orders["amount"] < 0
    assert 0.01 < returns.mean() < 0.08
    assert (orders.loc[returns, "quantity"] < 0).all()
    per_order = orders.groupby("order_id").agg(
        customers=("customer_id", "nunique"),
        times=("ordered_at", "nunique"),
        sold=("amount", lambda a: (a > 0).sum()),
        net=("amount", "sum"),
    )
    assert (per_order["customers"] == 1).all() and (per_order["times"] == 1).all()
    assert per_order["sold"].between(1, 4).all() and (per_order["net"].round(2) >= 0).all()
    store = orders["channel"] == "store"
    assert set(orders["channel"]) == {"app", "web", "store", "mini_program"}
    assert (
        orders.loc[store, "store_id"].notna().all() and orders.loc[~store, "store_id"].isna().all()
    )
    counted = orders.groupby("customer_id")["order_id"].nunique()
    assert counted.reindex(truth["customer_id"], fill_value=0).tolist() == truth["orders"].tolist()


def test_products_match_the_catalogue(out, orders):
    products = read_csv(out / "products.csv", "utf-8-sig")
    assert len(products) == 200 and products["product_id"].is_unique
    assert products["category"].nunique() == 20 and {"数码", "服饰", "食品"} <= set(
        products["category"]
    )
    category = products.set_index("product_id")["category"]
    assert (orders["category"] == category.reindex(orders["product_id"]).to_numpy()).all()
    assert (products["price"].astype(float) > 0).all()


def test_potential_customers_only_browse(out, orders, truth):
    never = set(truth.loc[~truth["buyer"], "customer_id"])
    assert 0.05 < len(never) / N < 0.15
    events = pq.read_table(out / "events.parquet").to_pandas()
    assert never <= set(events["customer_id"])
    others = set(orders["customer_id"])
    for name in ("interactions", "feedback", "costs"):
        frame = read_csv(out / f"{name}.csv")
        others |= set(frame[frame.columns[0]])
    assert not never & others
    kinds = events["event_type"].value_counts()
    assert set(kinds.index) == {"view", "search", "cart", "visit", "click"}
    assert 0.05 < kinds["cart"] / kinds["view"] < 0.5


def test_truth_is_consistent_with_the_data(out, orders, truth):
    meta = json.loads(pq.read_schema(out / "truth.parquet").metadata[b"tierwise.truth"])
    assert meta["population"]["r"] == POPULATION.r and meta["end"] == END.isoformat()
    buyers = truth[truth["buyer"]]
    assert (buyers["orders"] == buyers["repeat_purchases"] + 1).all()
    assert (buyers["purchase_days"] <= buyers["orders"]).all()
    dropped = buyers[~buyers["alive"]]
    assert dropped["dropout_date"].notna().all() and buyers["alive"].any()
    assert (pd.to_datetime(dropped["dropout_date"]) <= pd.Timestamp(END)).all()
    last = orders.groupby("customer_id")["ordered_at"].max().dt.date
    assert (last.reindex(dropped["customer_id"]).to_numpy() == dropped["dropout_date"]).all()
    has = truth["n_unresolved_complaints"] > 0
    assert ((truth["churn_effect"] > 0) == has).all()

    inter = read_csv(out / "interactions.csv")
    open_ = inter[(inter["类型"] == "complaint") & (inter["解决时间"] == "")]
    per_customer = open_.groupby("客户编号").size()
    expected = truth.set_index("customer_id")["n_unresolved_complaints"]
    assert per_customer.reindex(expected.index, fill_value=0).equals(expected)


def test_complaints_go_with_low_scores_and_higher_dropout(out, truth):
    feedback = read_csv(out / "feedback.csv")
    feedback["csat"] = pd.to_numeric(feedback["csat"])
    open_complaint = set(truth.loc[truth["n_unresolved_complaints"] > 0, "customer_id"])
    unhappy = feedback["customer_id"].isin(open_complaint)
    assert feedback.loc[unhappy, "csat"].mean() < feedback.loc[~unhappy, "csat"].mean() - 1
    assert feedback["csat"].dropna().between(1, 5).all()
    assert pd.to_numeric(feedback["nps"]).dropna().between(0, 10).all()
    assert feedback["comment"].str.contains("[\u4e00-\u9fff]").any()
    buyers = truth[truth["buyer"]]
    by_complaint = buyers.groupby(buyers["n_unresolved_complaints"] > 0)["p_dropout_effective"]
    assert by_complaint.mean()[True] > by_complaint.mean()[False]


def test_service_costs_sum_the_interactions(out):
    costs = read_csv(out / "costs.csv")
    costs["amount"] = costs["amount"].astype(float)
    assert set(costs["kind"]) == {"acquisition", "service", "marketing"}
    service = costs.loc[costs["kind"] == "service", "amount"].sum()
    inter = read_csv(out / "interactions.csv")["成本"].astype(float).sum()
    assert service == pytest.approx(inter, abs=0.01 * len(costs))
    acquisition = costs[costs["kind"] == "acquisition"]
    customers = read_csv(out / "customers.csv", "gb18030").set_index("客户编号")
    assert (
        acquisition["amount"].to_numpy()
        == customers.loc[acquisition["customer_id"], "获客成本"].astype(float).to_numpy()
    ).all()


def test_every_rfm_cell_is_populated_at_20k_customers(tmp_path):
    """Quantile R×F scores (DESIGN.md) fill all 25 cells: recent and lapsed, frequent, one-off."""
    result = generate(20_000, tmp_path, seed=11)
    orders = pq.read_table(
        result.out / "orders.parquet", columns=["customer_id", "order_id", "ordered_at"]
    ).to_pandas()
    per = orders.groupby("customer_id").agg(n=("order_id", "nunique"), last=("ordered_at", "max"))
    as_of = orders["ordered_at"].max().normalize()
    recency = (as_of - per["last"].dt.normalize()).dt.days

    def score(goodness: pd.Series) -> np.ndarray:
        rank = goodness.rank(method="min").to_numpy()
        return 1 + np.floor(5 * (rank - 1) / len(goodness)).astype(int)

    cells = pd.crosstab(score(-recency), score(per["n"]))
    assert cells.shape == (5, 5)
    assert cells.to_numpy().min() >= 0.01 * len(per)
    assert 0.15 < (per["n"] == 1).mean() < 0.4


def test_rejects_an_empty_population(tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        generate(0, tmp_path)
