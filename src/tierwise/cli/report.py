"""`tierwise report`: the dashboard's overview, segment, lifecycle and value pages as one HTML
file that opens offline (plotly.js inlined), for sharing with management."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def report(
    out_file: Annotated[Path, typer.Option("--out", help="The .html file to write.")] = Path(
        "report.html"
    ),
    lang: Annotated[str, typer.Option(help="en or zh_CN.")] = "en",
) -> None:
    """Write the shareable offline HTML report of the current published run."""
    from tierwise.cli.main import out, state
    from tierwise.core.errors import InvalidInputError
    from tierwise.services.dashboard import Dashboard
    from tierwise.services.report import CLI_VIEWER, report_data
    from tierwise.services.serving import opened_store
    from tierwise.web.i18n import LANGS
    from tierwise.web.report import render_report

    if lang not in LANGS:
        raise InvalidInputError(f"--lang {lang!r}: use one of {', '.join(LANGS)}")
    settings = state.settings()
    with opened_store(settings) as store:
        data = report_data(Dashboard(settings, store), CLI_VIEWER)
    html = render_report(data, "zh_CN" if lang == "zh_CN" else "en")
    out_file.parent.mkdir(parents=True, exist_ok=True)
    out_file.write_text(html, encoding="utf-8")
    if not state.quiet:
        run = data.overview.run_id or "no published run"
        out.print(f"wrote {out_file} ({len(html) / 1e6:.1f} MB, run {run})")
