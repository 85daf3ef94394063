"""Model fits: BG/NBD and Gamma-Gamma, ours vs lifetimes vs pymc-marketing (MAP).

    python -m bench.models --customers 100000 1000000 --repeats 3

Data: the per-customer purchase summary of the generated warehouses (bench/data), computed by
the engine (`purchase_summary` in weeks, as `tierwise run` fits, and `unique_rows`), cached
as Parquet. pymc-marketing gets flat priors (HalfFlat on every parameter), so its MAP is the
maximum-likelihood fit the others compute; it takes no weights, so it fits every customer.

Before timing, one untimed fit per contender is checked: its parameters, put into our
log-likelihood over every customer, must be within 0.1 % of our maximum. Each fit then runs in
a fresh process (library imports and data loading untimed), contenders alternating.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from bench import datasets
from bench.common import alternate, child, cli, span, summarise

UNIT_DAYS = 7.0
LL_TOLERANCE = 1e-3

BG_CONTENDERS = {
    "tierwise BetaGeoModel, unique rows": ("tierwise.models.betageo", "unique"),
    "tierwise BetaGeoModel, all customers": ("tierwise.models.betageo", "full"),
    "lifetimes BetaGeoFitter, unique rows (weights)": ("lifetimes", "unique"),
    "lifetimes BetaGeoFitter, all customers": ("lifetimes", "full"),
    "pymc-marketing BetaGeoModel MAP, all customers": ("pymc_marketing.clv", "full"),
}
GG_CONTENDERS = {
    "tierwise GammaGammaModel": ("tierwise.models.gammagamma", "spend"),
    "lifetimes GammaGammaFitter": ("lifetimes", "spend"),
    "pymc-marketing GammaGammaModel MAP": ("pymc_marketing.clv", "spend"),
}

SUMMARY = """
import time
from datetime import date
from pathlib import Path
from tierwise.core.settings import Settings
from tierwise.engine.summary import purchase_summary, unique_rows
from tierwise.services.warehouse import duckdb_connect
settings = Settings.load(Path({config!r}))
con = duckdb_connect({warehouse!r}, read_only=True, memory_limit=settings.warehouse.memory_limit)
summary = purchase_summary(con.table("orders"), as_of=settings.scoring.as_of, unit_days={unit})
t0 = time.perf_counter()
unique = unique_rows(summary).to_pyarrow()
unique_seconds = time.perf_counter() - t0
summary.to_parquet({full!r})
import pyarrow.parquet as pq
pq.write_table(unique, {unique!r})
result = {{"unique_seconds": unique_seconds, "unique_rows": unique.num_rows}}
"""

FIT = """
import time, warnings
warnings.filterwarnings("ignore")
import logging
logging.disable(logging.WARNING)
import pandas as pd
import {module}
from bench.models import FITTERS
data = pd.read_parquet({path!r})
t0 = time.perf_counter()
params = FITTERS[{name!r}](data)
seconds = time.perf_counter() - t0
result = {{"seconds": seconds, "params": params}}
"""


# -- the contenders: data frame in, fitted parameters out ------------------------------------


def _ours_bg(d: pd.DataFrame) -> dict[str, float]:
    from tierwise.models.betageo import BetaGeoModel

    w = d.get("weight")
    return BetaGeoModel().fit(d["frequency"], d["recency"], d["T"], weights=w).params_


def _lifetimes_bg(d: pd.DataFrame) -> dict[str, float]:
    from lifetimes import BetaGeoFitter

    w = d.get("weight")
    fitter = BetaGeoFitter().fit(d["frequency"], d["recency"], d["T"], weights=w)
    return {k: float(v) for k, v in fitter.params_.items()}


def _pymc_bg(d: pd.DataFrame) -> dict[str, float]:
    from pymc_extras.prior import Prior
    from pymc_marketing.clv import BetaGeoModel

    data = d[["frequency", "recency", "T"]].assign(customer_id=np.arange(len(d)))
    flat = {k: Prior("HalfFlat") for k in ("r", "alpha", "a", "b")}
    model = BetaGeoModel(data=data, model_config=flat)
    model.fit(method="map", progressbar=False)
    post = model.idata.posterior
    return {k: float(post[k].values.ravel()[0]) for k in ("r", "alpha", "a", "b")}


def _ours_gg(d: pd.DataFrame) -> dict[str, float]:
    from tierwise.models.gammagamma import GammaGammaModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the frequency/spend correlation warning
        return GammaGammaModel().fit(d["frequency"], d["monetary_value"]).params_


def _lifetimes_gg(d: pd.DataFrame) -> dict[str, float]:
    from lifetimes import GammaGammaFitter

    fitter = GammaGammaFitter().fit(d["frequency"], d["monetary_value"])
    return {k: float(v) for k, v in fitter.params_.items()}


def _pymc_gg(d: pd.DataFrame) -> dict[str, float]:
    from pymc_marketing.clv import GammaGammaModel

    data = d[["frequency", "monetary_value"]].assign(customer_id=np.arange(len(d)))
    model = GammaGammaModel(data=data)  # its default priors are HalfFlat: MAP = MLE
    model.fit(method="map", progressbar=False)
    post = model.idata.posterior
    return {k: float(post[k].values.ravel()[0]) for k in ("p", "q", "v")}


FITTERS = {
    "tierwise BetaGeoModel, unique rows": _ours_bg,
    "tierwise BetaGeoModel, all customers": _ours_bg,
    "lifetimes BetaGeoFitter, unique rows (weights)": _lifetimes_bg,
    "lifetimes BetaGeoFitter, all customers": _lifetimes_bg,
    "pymc-marketing BetaGeoModel MAP, all customers": _pymc_bg,
    "tierwise GammaGammaModel": _ours_gg,
    "lifetimes GammaGammaFitter": _lifetimes_gg,
    "pymc-marketing GammaGammaModel MAP": _pymc_gg,
}


# -- log-likelihoods on every customer -------------------------------------------------------


def bg_loglik(params: dict[str, float], d: pd.DataFrame) -> float:
    from tierwise.models.betageo import BetaGeoModel

    m = BetaGeoModel()
    m.params_ = dict(params)
    return float(m.log_likelihood_rows(d["frequency"], d["recency"], d["T"]).sum())


def bg_loglik_lifetimes(params: dict[str, float], d: pd.DataFrame) -> float:
    """The same likelihood through lifetimes' own function: an independent implementation."""
    from lifetimes import BetaGeoFitter

    log_params = np.log([params[k] for k in ("r", "alpha", "a", "b")])
    x, tx, age = (d[c].to_numpy(float) for c in ("frequency", "recency", "T"))
    w = np.ones_like(x)
    return -float(BetaGeoFitter._negative_log_likelihood(log_params, x, tx, age, w, 0.0)) * len(x)


def gg_loglik(params: dict[str, float], d: pd.DataFrame) -> float:
    from tierwise.models.gammagamma import loglik_rows

    p = np.array([params[k] for k in ("p", "q", "v")])
    x, m = d["frequency"].to_numpy(float), d["monetary_value"].to_numpy(float)
    return float(loglik_rows(p, x, m).sum())


def summaries(customers: int) -> tuple[Path, Path, Path, dict]:
    """(all customers, unique rows, repeat buyers with positive spend) Parquet files."""
    root = datasets.generated(customers)
    out = root / "models"
    full, unique, spend = out / "summary.parquet", out / "unique.parquet", out / "spend.parquet"
    info_file = out / "info.json"
    if not info_file.exists():
        out.mkdir(exist_ok=True)
        info = child(
            SUMMARY.format(
                config=str(root / "tierwise.toml"),
                warehouse=str(root / "ingested.duckdb"),
                unit=UNIT_DAYS,
                full=str(full),
                unique=str(unique),
            )
        )
        s = pd.read_parquet(full)
        s[(s["frequency"] > 0) & (s["monetary_value"] > 0)].to_parquet(spend)
        info_file.write_text(pd.Series(info).to_json())
    info = pd.read_json(info_file, typ="series").to_dict()
    return full, unique, spend, info


def bench(customers: int, repeats: int, *, include: set[str] | None = None) -> dict[str, object]:
    full, unique, spend, info = summaries(customers)
    data = {"full": full, "unique": unique, "spend": spend}
    everyone = pd.read_parquet(full)
    buyers = pd.read_parquet(spend)
    print(
        f"models: {customers:,} customers, {int(info['unique_rows']):,} unique rows, "
        f"{len(buyers):,} repeat buyers — checking",
        flush=True,
    )
    results: dict[str, object] = {
        "customers": customers,
        "unique_rows": int(info["unique_rows"]),
        "unique_rows_seconds": float(info["unique_seconds"]),
        "repeat_buyers": len(buyers),
        "repeats": repeats,
    }
    for model, contenders, loglik, rows in (
        ("bgnbd", BG_CONTENDERS, bg_loglik, everyone),
        ("gammagamma", GG_CONTENDERS, gg_loglik, buyers),
    ):
        chosen = {k: v for k, v in contenders.items() if include is None or k in include}

        def code(name: str, chosen: dict = chosen) -> str:
            module, kind = chosen[name]
            return FIT.format(module=module, path=str(data[kind]), name=name)

        checks = {}
        for name in chosen:
            params = child(code(name))["params"]
            checks[name] = {"params": params, "log_likelihood": loglik(params, rows)}
        best = max(c["log_likelihood"] for c in checks.values())
        for name, c in checks.items():
            c["relative_gap"] = (best - c["log_likelihood"]) / abs(best)
            if c["relative_gap"] > LL_TOLERANCE:
                raise AssertionError(
                    f"{name}: log-likelihood {c['log_likelihood']:.6g} is "
                    f"{c['relative_gap']:.2%} below the best {best:.6g} ({c['params']})"
                )
        if model == "bgnbd" and any(k.startswith("lifetimes") for k in chosen):
            ours = checks[next(iter(chosen))]
            ours["log_likelihood_by_lifetimes"] = bg_loglik_lifetimes(ours["params"], rows)
        runs = alternate({n: (lambda n=n: child(code(n))) for n in chosen}, repeats)
        results[model] = {"checks": checks, "runs": runs}
    return results


def table(results: list[dict]) -> str:
    md = []
    for model, title, base_name in (
        ("bgnbd", "BG/NBD", "tierwise BetaGeoModel, unique rows"),
        ("gammagamma", "Gamma-Gamma (repeat buyers)", "tierwise GammaGammaModel"),
    ):
        md += [
            f"**{title}**",
            "",
            "| customers | rows fitted | contender | median s (min–max) | × ours | "
            "log-likelihood (ours) | gap to best |",
            "|---|---|---|---|---|---|---|",
        ]
        for res in results:
            block = res[model]
            base = summarise([r["seconds"] for r in block["runs"][base_name]])["median"]
            for name, samples in block["runs"].items():
                secs = [r["seconds"] for r in samples]
                if model == "gammagamma":
                    n = res["repeat_buyers"]
                elif "unique" in name:
                    n = res["unique_rows"]
                else:
                    n = res["customers"]
                c = block["checks"][name]
                md.append(
                    f"| {res['customers']:,} | {n:,} | {name} | {span(secs)} | "
                    f"{summarise(secs)['median'] / base:.2f} | {c['log_likelihood']:,.1f} | "
                    f"{c['relative_gap']:.1e} |"
                )
        md.append("")
    for res in results:
        ours = res["bgnbd"]["checks"]["tierwise BetaGeoModel, unique rows"]
        if "log_likelihood_by_lifetimes" in ours:
            md.append(
                f"{res['customers']:,} customers: our BG/NBD maximum "
                f"{ours['log_likelihood']:,.2f}; "
                f"lifetimes' likelihood function at our parameters "
                f"{ours['log_likelihood_by_lifetimes']:,.2f}. "
                f"Unique rows computed by the engine in {res['unique_rows_seconds']:.2f} s."
            )
    return "\n".join(md)


def main() -> None:
    cli("models", __doc__, bench, table)


if __name__ == "__main__":
    main()
