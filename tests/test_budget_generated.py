"""Budget plans on generated data with known churn: the whole path (generate, ingest, run with
models, publish) and then the plan read back from the store, its baselines and LP bound."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from sqlalchemy import select

from tierwise.core.settings import Settings
from tierwise.services.budget import plan_budget
from tierwise.services.exports import LOCAL_OPERATOR
from tierwise.services.generate import generate
from tierwise.services.ingest import ingest
from tierwise.services.run import run
from tierwise.services.serving import Store, opened_store
from tierwise.store.models import PublishedProfile

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Settings, Store, dict[str, bool]]]:
    """3,000 generated customers, run with the default models; their true alive flags."""
    result = generate(3000, tmp_path_factory.mktemp("budget") / "demo", seed=11)
    settings = Settings.load(result.config)
    ingest(settings)
    run(settings)
    truth = pq.read_table(result.out / "truth.parquet", columns=["customer_id", "alive", "buyer"])
    alive = {r["customer_id"]: r["alive"] for r in truth.to_pylist() if r["buyer"]}
    with opened_store(settings) as store:
        yield settings, store, alive


def _auc(scores_of_positives: list[float], scores_of_negatives: list[float]) -> float:
    """P(a random positive scores above a random negative), ties counting half."""
    ranked = sorted([(s, 1) for s in scores_of_positives] + [(s, 0) for s in scores_of_negatives])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mid = (i + j + 1) / 2  # 1-based average rank of the tie group
        rank_sum += mid * sum(label for _, label in ranked[i:j])
        i = j
    n_pos, n_neg = len(scores_of_positives), len(scores_of_negatives)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def test_the_churn_probabilities_being_allocated_know_the_true_churners(demo):
    """Known churn: customers the simulation let drop out score higher than those alive."""
    _, store, alive = demo
    with store.read() as session:
        rows = session.execute(
            select(PublishedProfile.customer_id, PublishedProfile.churn_probability)
        ).all()
        scores = {cid: p for cid, p in rows if p is not None}
    churned = [p for cid, p in scores.items() if alive.get(cid) is False]
    kept = [p for cid, p in scores.items() if alive.get(cid) is True]
    assert len(churned) > 300 and len(kept) > 300
    assert _auc(churned, kept) > 0.75


@pytest.mark.parametrize(
    ("budget", "cost", "effect"),
    [(50_000.0, 20.0, 0.1), (2_010.0, 20.0, 0.1), (3_005.0, 5.0, 0.3), (15_000.0, 10.0, 0.5)],
)
def test_chosen_set_beats_both_strategies_within_one_percent_of_the_lp_bound(
    demo, budget: float, cost: float, effect: float
):
    _, store, _ = demo
    plan = plan_budget(store, LOCAL_OPERATOR, budget=budget, cost=cost, effect=effect, top=5000)
    churn, clv = plan.baselines
    assert (churn.strategy, clv.strategy) == ("top churn risk", "top CLV")
    assert plan.plan.spent <= budget and churn.spent <= budget and clv.spent <= budget
    assert plan.plan.expected_value >= churn.expected_value
    assert plan.plan.expected_value >= clv.expected_value
    assert plan.plan.expected_value <= plan.lp_bound
    assert plan.plan.expected_value >= 0.99 * plan.lp_bound
    assert plan.gap <= 0.01
    # the chosen customers are exactly those worth treating, best first, as many as fit
    values = [c.expected_value for c in plan.top]
    assert all(v > 0 for v in values) and values == sorted(values, reverse=True)
    assert len(plan.top) == plan.plan.customers
    assert sum(values) == pytest.approx(plan.plan.expected_value)


def test_a_binding_budget_has_a_real_but_small_gap(demo):
    """2,010 at 20 each buys 100 customers and half of the 101st: the bound sits above the plan."""
    _, store, _ = demo
    plan = plan_budget(store, LOCAL_OPERATOR, budget=2_010.0, cost=20.0, effect=0.1)
    assert plan.plan.customers == 100 and plan.plan.spent == 2_000.0
    assert 0 < plan.gap <= 0.01
    assert plan.plan.expected_value > 2 * max(b.expected_value for b in plan.baselines)


def test_account_managers_get_at_most_their_capacity(demo):
    _, store, _ = demo
    plan = plan_budget(
        store, LOCAL_OPERATOR, budget=4_000.0, cost=20.0, effect=0.2, capacity=3, top=1000
    )
    assert plan.managers and all(m.assigned <= 3 for m in plan.managers)
    assigned = sum(m.assigned for m in plan.managers)
    assert assigned + plan.queued == plan.plan.customers
    assert sum(m.own for m in plan.managers) > assigned / 2  # most keep their own manager
    kept = [c for c in plan.top if c.assigned_to == c.account_manager]
    assert len(kept) == sum(m.own for m in plan.managers)


def test_budget_command_prints_the_plan_next_to_baselines_and_bound(demo):
    settings, _, _ = demo
    config = str(Path(settings.root) / "tierwise.toml")
    command = [sys.executable, "-m", "tierwise", "--config", config]
    args = ["budget", "--budget", "50000", "--cost", "20", "--effect", "0.1"]
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for text in ("value per cost", "top churn risk", "top CLV", "LP bound", "optimality gap"):
        assert text in done.stdout
    bad = subprocess.run(
        [*command, "budget", "--budget", "10", "--cost", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert bad.returncode == 1 and "cost must be" in bad.stderr
