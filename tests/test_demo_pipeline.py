"""The demo path end to end: generate 20k customers, ingest every table, run, check the mix."""

from __future__ import annotations

from tierwise.core.settings import Settings
from tierwise.core.vocab import Class8, Segment, Stage
from tierwise.services.generate import generate
from tierwise.services.ingest import ingest
from tierwise.services.run import run, summary
from tierwise.services.warehouse import connect


def test_generated_demo_populates_every_segment_class_and_stage(tmp_path):
    result = generate(20_000, tmp_path / "demo", seed=7)
    settings = Settings.load(result.config)
    report = ingest(settings)
    assert not report.failed and all(f.reconciles for f in report.files)
    assert {f.table_name for f in report.files} == {
        "customers",
        "orders",
        "products",
        "events",
        "interactions",
        "feedback",
        "costs",
    }
    done = run(settings)
    s = summary(connect(settings), done.run_id)
    assert s["customers"] == 20_000
    assert set(s["rfm_segment"]) == {seg.value for seg in Segment}  # all ten plus no_orders
    assert set(s["rfm_class8"]) - {"(none)"} == {c.value for c in Class8}
    assert set(s["lifecycle_stage"]) == {stage.value for stage in Stage}
    shares = {k: v["revenue_share"] for k, v in s["abc"].items()}
    assert 0.60 < shares["A"] <= 0.71 and shares["C"] < 0.15
    again = ingest(settings)
    assert {f.status for f in again.files} == {"unchanged"}
