"""The shareable report: one HTML file with plotly.js, the styles, the figures and the script
that draws them inlined, so it opens with no network and no server."""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from tierwise.services.report import ReportData, plotly_js_path
from tierwise.web import charts
from tierwise.web.i18n import Formatter, Lang, translations
from tierwise.web.templating import environment


def _inline_script(source: str) -> str:
    """Script text that cannot close its <script> element early."""
    return source.replace("</script", "<\\/script").replace("<!--", "<\\!--")


def render_report(data: ReportData, lang: Lang) -> str:
    def _(message: str, **values: Any) -> str:
        text = translations(lang).gettext(message)
        return text % values if values else text

    fmt = Formatter(lang)
    o, s, life, v = data.overview, data.segments, data.lifecycle, data.value
    figures = {
        "pareto": charts.pareto(o.pareto, o.abc, _),
        "segments": charts.share_bars(o.segments, "rfm_segment", fmt, _),
        "funnel": charts.funnel(o.funnel, fmt, _),
        "rf": charts.rf_heatmap(s.rf, fmt, _) | {"clickable": False},
        "class8": charts.share_bars(s.dimensions["rfm_class8"], "rfm_class8", fmt, _),
        "migration": charts.migration_heatmap(life.migration, fmt, _),
        "sankey": charts.migration_sankey(life.migration, fmt, _),
        "cohorts": charts.cohort_heatmap(life.cohorts, _),
        "stages": charts.stage_history(life.stage_history, fmt, _),
        "clv": charts.histogram(v.clv, _("Customer lifetime value"), _),
        "profit": charts.histogram(v.profit, _("Profit"), _, losses_red=True),
    }
    static = files("tierwise.web").joinpath("static")
    return (
        environment(lang)
        .get_template("report.html")
        .render(
            data=data,
            figures=figures,
            css=static.joinpath("app.css").read_text("utf-8"),
            app_js=_inline_script(static.joinpath("app.js").read_text("utf-8")),
            plotly_js=_inline_script(plotly_js_path().read_text("utf-8")),
        )
    )
