"""Engine test fixtures: load pandas frames as real tables on each backend."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import ibis.expr.types as ir
import pandas as pd
import pytest


@pytest.fixture
def load(con, request) -> Callable[[Mapping[str, pd.DataFrame]], dict[str, ir.Table]]:
    """Create each frame as a table on `con`, named uniquely for the test (Spark is shared)."""
    if con.name == "pyspark":
        # ibis hands Spark a pandas frame; without Arrow, Spark reads nulls as NaN and "NaN".
        con.raw_sql("SET spark.sql.execution.arrow.pyspark.enabled=true")
    prefix = "eng_" + re.sub(r"\W+", "_", request.node.name).strip("_").lower()

    def _load(frames: Mapping[str, pd.DataFrame]) -> dict[str, ir.Table]:
        return {
            name: con.create_table(f"{prefix}_{name}", df, overwrite=True)
            for name, df in frames.items()
        }

    return _load
