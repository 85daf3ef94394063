"""The dashboard pages: server-rendered HTML on the API's own sign-in and services.

A page signs in with the session cookie of POST /api/v1/auth/login (or the login form here),
asks `Dashboard` exactly what its /api/v1/dashboard twin asks, and renders it with Jinja2
(autoescaped) in the viewer's language. Charts are Plotly figures in JSON data blocks drawn by
static/app.js with plotly.js from the installed `plotly` package; the Content-Security-Policy
allows scripts from this origin only, so no page carries inline script. State-changing forms
carry the session's CSRF token; the sign-in form, which has no session yet, a token of its own
in a short-lived cookie (double submit).
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from importlib.resources import as_file, files
from pathlib import Path
from typing import Annotated, Any, get_args
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from pydantic import ValidationError

from tierwise.api.auth import SESSION_COOKIE, SettingsDep, StoreDep
from tierwise.api.dashboard import CustomerListQuery, DashboardDep, list_filter
from tierwise.api.schemas import MigrationQuery
from tierwise.core.errors import (
    AuthError,
    InvalidInputError,
    NotFoundError,
    PermissionDeniedError,
    ThrottledError,
    TierwiseError,
)
from tierwise.core.vocab import BY_COLUMN
from tierwise.services import behaviour, serving
from tierwise.services.access import OPERATOR_ROLES, PII_READ, Principal, can
from tierwise.services.behaviour import Dimension
from tierwise.services.dashboard import WebViewer, web_viewer
from tierwise.services.report import plotly_js_path, report_data
from tierwise.web import charts, segment_charts
from tierwise.web.i18n import (
    LANG_COOKIE,
    LANGS,
    N_,
    Formatter,
    Lang,
    negotiate,
    translations,
)
from tierwise.web.report import render_report
from tierwise.web.templating import environment

router = APIRouter(include_in_schema=False)

LOGIN_CSRF_COOKIE = "tierwise_login_csrf"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data: blob:; font-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""Scripts from this origin only. Plotly sets inline styles on the elements it draws, so
styles may be inline; neither can run code."""
PAGE_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
NAV = (
    ("/", N_("Overview"), False),
    ("/segments", N_("Segments"), False),
    ("/lifecycle", N_("Lifecycle"), False),
    ("/value", N_("Value & churn"), False),
    ("/customers", N_("Customers"), False),
    ("/data", N_("Data"), True),
    ("/runs", N_("Runs"), False),
)
"""(path, title msgid, operators only)."""
ROLE_NAMES = {
    "admin": N_("Administrator"),
    "analyst": N_("Analyst"),
    "manager": N_("Manager"),
    "agent": N_("Agent"),
}

ERROR_STATUS = ((NotFoundError, 404), (PermissionDeniedError, 403))
"""Status of an error page; other domain errors are the request's fault (400)."""

# --- rendering --------------------------------------------------------------------------------


def safe_next(target: str | None) -> str:
    """A local path to go back to; anything else (other hosts, `//host`) goes home."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return "/"
    return target


@dataclass(frozen=True)
class Page:
    """One request's page: its language, its signed-in user (if any) and how to render."""

    request: Request
    lang: Lang
    viewer: WebViewer | None = None

    @property
    def user(self) -> Principal:
        """The signed-in user (pages behind `signed_in` always have one)."""
        if self.viewer is None:
            raise AuthError("not signed in")
        return self.viewer.principal

    @property
    def fmt(self) -> Formatter:
        return Formatter(self.lang)

    def _(self, message: str, **values: Any) -> str:
        text = translations(self.lang).gettext(message)
        return text % values if values else text

    def render(self, template: str, *, status: int = 200, **context: Any) -> HTMLResponse:
        env = environment(self.lang)
        html = env.get_template(template).render(**self._common(), **context)
        return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)

    def error(self, exc: TierwiseError) -> Response:
        if isinstance(exc, AuthError):
            return login_redirect(self.request)
        status = next((code for cls, code in ERROR_STATUS if isinstance(exc, cls)), 400)
        return self.render("error.html", status=status, status_code=status, message=str(exc))

    def _common(self) -> dict[str, Any]:
        path = self.request.url.path
        here = path + (f"?{self.request.url.query}" if self.request.url.query else "")
        user = self.viewer.principal if self.viewer else None
        operator = user is not None and user.role in OPERATOR_ROLES
        return {
            "user": user,
            "role_name": self._(ROLE_NAMES.get(user.role, user.role)) if user else "",
            "csrf_token": self.viewer.csrf_token if self.viewer else "",
            "nav": [(p, self._(title), p == path) for p, title, ops in NAV if operator or not ops],
            "switch_lang": [
                (code, f"/lang/{code}?" + urlencode({"next": here}), code == self.lang)
                for code in LANGS
            ],
            "here": here,
        }


def page_lang(request: Request) -> Lang:
    return negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def login_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)


LangDep = Annotated[Lang, Depends(page_lang)]


def signed_in(request: Request, store: StoreDep, lang: LangDep) -> Page:
    """The page of a signed-in user; anyone else is sent to the sign-in form (303)."""
    secret = request.cookies.get(SESSION_COOKIE)
    try:
        if not secret:
            raise AuthError("not signed in")
        viewer = web_viewer(store, secret)
    except AuthError:
        target = login_redirect(request).headers["location"]
        raise HTTPException(status_code=303, headers={"Location": target}) from None
    request.state.username = viewer.principal.username
    return Page(request, lang, viewer)


PageDep = Annotated[Page, Depends(signed_in)]


def _show(page: Page, template: str, build: Callable[[], Mapping[str, Any]]) -> Response:
    """Render `template` with what `build` returns; domain errors become error pages."""
    try:
        context = build()
    except TierwiseError as e:
        return page.error(e)
    return page.render(template, **context)


# --- sign-in, sign-out, language ---------------------------------------------------------------


@router.get("/login")
def login_form(request: Request, store: StoreDep, lang: LangDep, next: str = "/") -> Response:
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        with contextlib.suppress(AuthError):  # an expired session signs in again below
            web_viewer(store, secret)
            return RedirectResponse(safe_next(next), status_code=303)
    return _login_page(Page(request, lang), next=safe_next(next))


def _login_page(page: Page, *, next: str, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = page.render("login.html", status=status, login_csrf=token, next=next, error=error)
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path="/login",
        secure=page.request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/login")
def login(
    request: Request,
    store: StoreDep,
    lang: LangDep,
    username: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    page = Page(request, lang)
    target = safe_next(next)
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf_token.encode()):
        message = page._("The sign-in form expired. Please try again.")
        return _login_page(page, next=target, error=message, status=403)
    if not username or not password or len(username) > 64 or len(password) > 1024:
        return _login_page(
            page, next=target, error=page._("Wrong user name or password."), status=401
        )
    ip = request.client.host if request.client else "unknown"
    try:
        signed = serving.login(store, username, password, ip)
    except ThrottledError:
        message = page._("Too many failed sign-ins. Please wait a few minutes and try again.")
        return _login_page(page, next=target, error=message, status=429)
    except AuthError:
        return _login_page(
            page, next=target, error=page._("Wrong user name or password."), status=401
        )
    request.state.username = signed.principal.username
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        signed.session_secret,
        expires=signed.expires_at,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, store: StoreDep, csrf_token: Annotated[str, Form()] = "") -> Response:
    secret = request.cookies.get(SESSION_COOKIE)
    response = RedirectResponse("/login", status_code=303)
    if secret:
        try:
            user = serving.principal_for_session(
                store, secret, state_changing=True, csrf_token=csrf_token
            )
        except AuthError:
            pass  # the session is already gone
        except PermissionDeniedError:
            return RedirectResponse("/", status_code=303)  # no valid token: stay signed in
        else:
            serving.logout(store, user, secret)
    response.delete_cookie(
        SESSION_COOKIE,
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="lax",
    )
    return response


@router.get("/lang/{lang}")
def switch_language(lang: str, next: str = "/") -> Response:
    """Remember the chosen language in a cookie and go back (a preference, not a secret)."""
    response = RedirectResponse(safe_next(next), status_code=303)
    if lang in LANGS:
        response.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path="/", samesite="lax")
    return response


# --- pages -------------------------------------------------------------------------------------


@router.get("/")
def overview_page(page: PageDep, dashboard: DashboardDep) -> Response:
    def build() -> dict[str, Any]:
        data = dashboard.overview(page.user)
        _, fmt = page._, page.fmt
        figures = {
            "pareto": charts.pareto(data.pareto, data.abc, _),
            "segments": charts.share_bars(data.segments, "rfm_segment", fmt, _),
            "funnel": charts.funnel(data.funnel, fmt, _),
        }
        return {"data": data, "figures": figures}

    return _show(page, "overview.html", build)


@router.get("/segments")
def segments_page(
    page: PageDep, dashboard: DashboardDep, store: StoreDep, settings: SettingsDep
) -> Response:
    def build() -> dict[str, Any]:
        data = dashboard.segments(page.user)
        _, fmt = page._, page.fmt
        figures = {
            "rf": charts.rf_heatmap(data.rf, fmt, _),
            "class8": charts.share_bars(data.dimensions["rfm_class8"], "rfm_class8", fmt, _),
        }
        clusters = behaviour.clusters(settings, store)
        return {
            "data": data,
            "figures": figures,
            "segment_links": SEGMENT_LINKS,
            "dimension_names": DIMENSION_NAMES,
            "clusters": [(c["cluster"], cluster_label(c, _)) for c in clusters.clusters],
        }

    return _show(page, "segments.html", build)


SEGMENT_DIMENSIONS: tuple[str, ...] = get_args(Dimension)
DIMENSION_NAMES = {
    "rfm_segment": N_("RFM segment"),
    "rfm_class8": N_("8-class RFM"),
    "abc_class": N_("ABC class"),
    "value_tier": N_("Value tier"),
    "lifecycle_stage": N_("Lifecycle stage"),
    "churn_risk": N_("Churn risk"),
    "behaviour_cluster": N_("Behaviour cluster"),
}
SEGMENT_LINKS = ("rfm_segment", "rfm_class8", "value_tier", "lifecycle_stage")
"""Dimensions whose classes the segments page links to a segment view (clusters too)."""
CHANNEL_NAMES = {
    "app": N_("App"),
    "web": N_("Web"),
    "store": N_("Store"),
    "mini_program": N_("Mini program"),
}
"""Order channels of the generated data; other channels show as they are stored."""
BEHAVIOUR_FEATURES = {
    "orders": N_("Orders"),
    "avg_order_value": N_("Average order value"),
    "recency_days": N_("Days since last order"),
    "tenure_days": N_("Days since first order"),
    "basket_size": N_("Products per order"),
    "categories": N_("Categories bought"),
    "top_category_share": N_("Share of the main category"),
    "discount_share": N_("Discounted lines"),
    "return_share": N_("Returned lines"),
    "weekend_share": N_("Weekend orders"),
    "night_share": N_("Night orders"),
    "morning_share": N_("Morning orders"),
    "afternoon_share": N_("Afternoon orders"),
    "evening_share": N_("Evening orders"),
    "main_channel_share": N_("Loyalty to one channel"),
    "views": N_("Product views"),
    "carts": N_("Cart adds"),
}
"""The behaviour features clusters are described by (`engine.behaviour.FEATURES`)."""
REC_REASONS = {
    "bought_often": N_("Bought often"),
    "popular": N_("Popular"),
    "popular_in_segment": N_("Popular in their segment"),
    "bought_with": N_("Bought together"),
    "customers_like_you": N_("Customers like you"),
}
"""Badge text of each recommendation reason code."""
REC_MODELS = {
    "buy_again": N_("Buy again"),
    "popularity": N_("Popularity"),
    "segment_popularity": N_("Popularity in the segment"),
    "cooccurrence": N_("Bought together (co-occurrence)"),
    "als": N_("Customers like you (ALS)"),
}
REC_METRICS = {
    "precision": N_("precision"),
    "recall": N_("recall"),
    "ndcg": N_("NDCG"),
    "hit_rate": N_("hit rate"),
}
REC_BASELINES = frozenset({"buy_again", "popularity", "segment_popularity"})
"""Recommenders that are baselines: a model earns its place only by beating them."""
TOP_RULES = 3
"""Association rules shown per top product of a segment."""


def cluster_label(cluster: Mapping[str, Any], _: Callable[..., str]) -> str:
    """A behaviour cluster in the page's words: its distinguishing features, high or low (the
    run's own label names the features in code)."""
    parts = []
    for d in cluster.get("distinctions") or []:
        feature = _(BEHAVIOUR_FEATURES.get(d["feature"], d["feature"]))
        if d["z"] > 0:
            parts.append(_("%(feature)s: high", feature=feature))
        else:
            parts.append(_("%(feature)s: low", feature=feature))
    return " · ".join(parts) or str(cluster.get("label") or "")


@router.get("/segments/{dimension}/{key}")
def segment_page(
    dimension: str, key: str, page: PageDep, store: StoreDep, settings: SettingsDep
) -> Response:
    """One segment's buying behaviour: what the `/api/v1/segments/{dimension}/{key}/…`,
    association-rule, cluster and evaluation twins return, for the viewer's customers."""

    def build() -> dict[str, Any]:
        if dimension not in SEGMENT_DIMENSIONS:
            raise NotFoundError(f"no segment dimension {dimension!r}")
        if not key or len(key) > 64 or not key.isprintable():
            raise InvalidInputError(f"not a segment name: {key!r}")
        _, fmt = page._, page.fmt
        products = behaviour.segment_products(settings, store, page.user, dimension, key)
        habits = behaviour.segment_behaviour(settings, store, page.user, dimension, key)
        rules = [
            rule
            for p in products.products
            for rule in behaviour.rules(
                settings, store, product_id=p["product_id"], limit=TOP_RULES
            ).rules
        ]
        clusters = behaviour.clusters(settings, store)
        figures: dict[str, Any] = {}
        if habits.heatmap:
            figures["habits"] = segment_charts.weekday_hour(habits.heatmap, fmt, _)
        if habits.categories:
            figures["categories"] = segment_charts.preference_bars(habits.categories, str, _)
        if habits.channels:
            figures["channels"] = segment_charts.preference_bars(
                habits.channels, lambda c: _(CHANNEL_NAMES[c]) if c in CHANNEL_NAMES else c, _
            )
        if habits.funnel and habits.funnel["viewers"]:
            figures["funnel"] = segment_charts.browse_funnel(habits.funnel, _)
        name = (
            _("Cluster %(cluster)s", cluster=key)
            if dimension == "behaviour_cluster"
            else fmt.label(dimension, key)
        )
        return {
            "dimension": dimension,
            "dimension_name": _(DIMENSION_NAMES[dimension]),
            "key": key,
            "name": name,
            "products": products,
            "habits": habits,
            "rules": rules,
            "clusters": [(c, cluster_label(c, _)) for c in clusters.clusters],
            "evaluation": behaviour.evaluation(settings, store),
            "figures": figures,
            "rec_models": REC_MODELS,
            "rec_baselines": REC_BASELINES,
            "rec_metrics": REC_METRICS,
            "behaviour_features": BEHAVIOUR_FEATURES,
        }

    return _show(page, "segment.html", build)


@router.get("/lifecycle")
def lifecycle_page(
    page: PageDep, dashboard: DashboardDep, dimension: str = "lifecycle_stage"
) -> Response:
    def build() -> dict[str, Any]:
        try:
            query = MigrationQuery.model_validate({"dimension": dimension})
        except ValidationError:
            query = MigrationQuery()
        data = dashboard.lifecycle(page.user, query.dimension)
        _, fmt = page._, page.fmt
        figures = {
            "migration": charts.migration_heatmap(data.migration, fmt, _),
            "sankey": charts.migration_sankey(data.migration, fmt, _),
            "cohorts": charts.cohort_heatmap(data.cohorts, _),
            "stages": charts.stage_history(data.stage_history, fmt, _),
        }
        return {"data": data, "figures": figures, "dimensions": MIGRATION_DIMENSIONS}

    return _show(page, "lifecycle.html", build)


MIGRATION_DIMENSIONS = ("lifecycle_stage", "rfm_segment", "rfm_class8", "value_tier")


@router.get("/value")
def value_page(page: PageDep, dashboard: DashboardDep) -> Response:
    def build() -> dict[str, Any]:
        data = dashboard.value(page.user)
        _ = page._
        figures = {
            "clv": charts.histogram(data.clv, _("Customer lifetime value"), _),
            "profit": charts.histogram(data.profit, _("Profit"), _, losses_red=True),
        }
        if data.models and data.models.churn_scorers:
            figures["scorers"] = charts.churn_scorers(data.models.churn_scorers, _)
        return {"data": data, "figures": figures}

    return _show(page, "value.html", build)


FILTERS = (
    ("segment", "rfm_segment"),
    ("class8", "rfm_class8"),
    ("abc", "abc_class"),
    ("tier", "value_tier"),
    ("stage", "lifecycle_stage"),
    ("churn_risk", "churn_risk"),
)


@router.get("/customers")
def customers_page(request: Request, page: PageDep, dashboard: DashboardDep) -> Response:
    params = {k: v for k, v in request.query_params.items() if v != ""}

    def build() -> dict[str, Any]:
        try:
            query = CustomerListQuery.model_validate(params)
        except ValidationError as e:
            fields = ", ".join(str(err["loc"][0]) for err in e.errors() if err["loc"])
            raise InvalidInputError(page._("Invalid filter: %(fields)s", fields=fields)) from None
        data = dashboard.customers(
            page.user,
            list_filter(query),
            sort=query.sort,
            descending=query.order == "desc",
            page=query.page,
            page_size=query.page_size,
        )

        def link(**changes: Any) -> str:
            merged = {k: v for k, v in (params | changes).items() if v not in (None, "")}
            return "/customers?" + urlencode(merged)

        return {
            "data": data,
            "query": query,
            "params": params,
            "link": link,
            "filters": FILTERS,
            "pages": max(1, -(-data.total // query.page_size)),
            "vocab": _vocab(),
        }

    return _show(page, "customers.html", build)


def _vocab() -> dict[str, list[str]]:
    return {column: [m.value for m in vocab] for column, vocab in BY_COLUMN.items()}


@router.get("/customers/{customer_id}")
def customer_page(
    customer_id: str,
    page: PageDep,
    dashboard: DashboardDep,
    store: StoreDep,
    settings: SettingsDep,
) -> Response:
    def build() -> dict[str, Any]:
        data = dashboard.customer(page.user, customer_id)
        figures = {"orders": charts.order_history(data.months, page._)} if data.months else {}
        unmasked = can(page.user, PII_READ)
        recs = behaviour.customer_recommendations(store, page.user, customer_id)
        cluster = next(
            (
                c
                for c in behaviour.clusters(settings, store).clusters
                if c["cluster"] == recs.behaviour_cluster
            ),
            None,
        )
        titles = {r["product_id"]: r["title"] for r in recs.repeat + recs.new}
        return {
            "data": data,
            "p": data.profile,
            "figures": figures,
            "unmasked": unmasked,
            "recs": recs,
            "cluster": cluster,
            "cluster_label": cluster_label(cluster, page._) if cluster else None,
            "rec_reasons": REC_REASONS,
            "product_titles": titles,
        }

    return _show(page, "customer.html", build)


@router.get("/data")
def data_page(page: PageDep, dashboard: DashboardDep) -> Response:
    return _show(
        page,
        "data.html",
        lambda: {"data": dashboard.data(page.user), "least_complete": least_complete},
    )


def least_complete(completeness: Mapping[str, float | None] | None) -> list[tuple[str, float]]:
    """The three least complete columns of a table (only those with gaps)."""
    gaps = [(c, s) for c, s in (completeness or {}).items() if s is not None and s < 1]
    return sorted(gaps, key=lambda item: item[1])[:3]


@router.get("/runs")
def runs_page(page: PageDep, dashboard: DashboardDep) -> Response:
    return _show(page, "runs.html", lambda: {"data": dashboard.runs(page.user)})


@router.get("/report.html")
def report_download(page: PageDep, dashboard: DashboardDep) -> Response:
    """The offline report of the viewer's customers, as a file to share."""
    try:
        data = report_data(dashboard, page.user)
    except TierwiseError as e:
        return page.error(e)
    html = render_report(data, page.lang)
    name = f"tierwise-report-{data.overview.run_id or 'empty'}.html"
    return HTMLResponse(
        html,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


# --- static files ------------------------------------------------------------------------------


@cache
def _static_files() -> dict[str, Path]:
    """Hand-written files under web/static, and plotly.js from the installed plotly package."""
    root = files("tierwise.web").joinpath("static")
    found = {}
    for item in root.iterdir():
        if item.is_file():
            with as_file(item) as path:
                found[item.name] = Path(path)
    found["vendor/plotly.min.js"] = plotly_js_path()
    return found


MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}


@router.get("/static/{name:path}")
def static(name: str) -> Response:
    path = _static_files().get(name)
    if path is None:
        return Response(status_code=404)
    return FileResponse(
        path,
        media_type=MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )
