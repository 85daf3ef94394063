"""What the shareable report holds: the overview, segment, lifecycle and value pages' data for
one viewer, from the same `Dashboard` calls as the pages, and where plotly.js comes from.

The report carries aggregates only (no customer rows), so it can go to management by mail;
`web.report` renders it into one HTML file that works offline.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path

from tierwise.core.errors import ConfigError
from tierwise.services.access import Principal, Viewer
from tierwise.services.dashboard import (
    Dashboard,
    LifecyclePage,
    Overview,
    SegmentsPage,
    ValuePage,
)

CLI_VIEWER = Principal(0, "cli", "cli", "admin", None)
"""The local operator, as CLI commands act (see serving: every customer, audited as `cli`)."""


@dataclass(frozen=True)
class ReportData:
    generated_at: datetime
    overview: Overview
    segments: SegmentsPage
    lifecycle: LifecyclePage
    value: ValuePage


def report_data(dashboard: Dashboard, viewer: Viewer) -> ReportData:
    """The report's pages for `viewer`; high-risk customer rows are left out (aggregates only)."""
    value = dashboard.value(viewer)
    return ReportData(
        generated_at=datetime.now(UTC),
        overview=dashboard.overview(viewer),
        segments=dashboard.segments(viewer),
        lifecycle=dashboard.lifecycle(viewer),
        value=replace(value, at_risk=[]),
    )


def plotly_js_path() -> Path:
    """plotly.min.js as shipped inside the installed `plotly` Python package (never a CDN)."""
    resource = files("plotly").joinpath("package_data", "plotly.min.js")
    path = Path(str(resource))
    if not path.is_file():
        raise ConfigError("plotly.min.js is missing from the plotly package; reinstall plotly")
    return path
