"""Recovery of known parameters from 100k simulated customers.

Purchase histories are cut to whole days and grouped into unique (x, t_x, T) rows with counts,
as the engine delivers them, so the weighted fit is what is exercised. Each estimate must lie
within three of its own standard errors of the truth.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tierwise.models.betageo import BetaGeoModel, ModifiedBetaGeoModel
from tierwise.models.gammagamma import GammaGammaModel
from tierwise.models.paretonbd import ParetoNBDModel
from tierwise.models.simulate import simulate_beta_geo, simulate_pareto_nbd, simulate_spend

N = 100_000
COHORT_AGES = np.random.default_rng(1).choice([91.0, 182.0, 273.0, 364.0], N)


def day_rows(sim) -> pd.DataFrame:
    days = pd.DataFrame({"x": sim.frequency, "tx": np.round(sim.recency), "T": sim.T})
    return days.groupby(["x", "tx", "T"]).size().reset_index(name="weight")


def assert_recovered(model, truth: dict[str, float]) -> None:
    for name, value in truth.items():
        error = model.params_[name] - value
        assert abs(error) < 3 * model.standard_errors_[name], (name, model.params_[name], value)


@pytest.mark.parametrize(
    ("cls", "truth", "simulate"),
    [
        (BetaGeoModel, {"r": 0.25, "alpha": 30.0, "a": 0.8, "b": 2.5}, "bg"),
        (ModifiedBetaGeoModel, {"r": 0.25, "alpha": 30.0, "a": 0.8, "b": 2.5}, "mbg"),
        (ParetoNBDModel, {"r": 0.55, "alpha": 70.0, "s": 0.6, "beta": 80.0}, "pareto"),
    ],
)
def test_purchase_model_recovers_parameters(cls, truth, simulate):
    if simulate == "pareto":
        sim = simulate_pareto_nbd(N, **truth, T=COHORT_AGES, seed=3)
    else:
        sim = simulate_beta_geo(N, **truth, T=COHORT_AGES, modified=simulate == "mbg", seed=2)
    rows = day_rows(sim)
    assert len(rows) < N / 10  # the unique-row path is what keeps fitting cheap
    model = cls().fit(rows["x"], rows["tx"], rows["T"], weights=rows["weight"])
    assert_recovered(model, truth)


def test_gammagamma_recovers_parameters():
    truth = {"p": 6.0, "q": 3.5, "v": 15.0}
    sim = simulate_beta_geo(N, r=0.25, alpha=30.0, a=0.8, b=2.5, T=COHORT_AGES, seed=10)
    spend = simulate_spend(sim.frequency, **truth, seed=0)
    model = GammaGammaModel().fit(sim.frequency, spend)
    assert model.n_ignored_ == np.sum(sim.frequency == 0)
    assert_recovered(model, truth)
