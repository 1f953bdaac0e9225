"""``/dashboard``: the revenue reports as charts, behind a login, served by the gateway.

Read-only. Every number comes from the report functions the CLI prints (``store.reports``
through ``ReportBook``, the SLA report from ``analysis.sla_report``), rendered here as HTML with
SVG charts drawn on the server (``gateway.dashboard_charts``) and one stylesheet shipped in the
package: it works with no internet. Filters are a plain form (period, segment, attribution
model). Aggregate pages name channels, campaigns, journeys, teams and lists, never a person;
the contact page shows a contact by its opaque id, its stage history and a link to its
workflow in the Temporal UI.

Sign-in: users and password hashes come from settings (``gateway.dashboard_auth``); every page
but the sign-in form redirects there without a valid session cookie.
"""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from analysis.attribution import AttributionReport
from analysis.holdout import HoldoutReport
from analysis.journey_metrics import JourneysReport
from analysis.report_window import ReportWindow, seconds_text
from analysis.sla_report import SlaReport, sla_report
from definitions import ATTRIBUTION, HANDOFF, Definitions
from gateway.dashboard_auth import COOKIE, check_password, session_cookie, session_user
from gateway.dashboard_charts import Bar, Series, bars, grouped_bars, line_chart, stacked_bars
from lifecycle.stages import Stage
from revops.errors import ConfigError
from revops.ids import contact_workflow_id
from revops.settings import Settings
from store.journeys import JourneyLog
from store.registry import Registry
from store.repo import Store
from store.reports import ReportBook
from store.sla import SlaBook

__all__ = ["Filters", "mount_dashboard", "overview"]

_HERE = Path(__file__).parent
_TEMPLATES = Environment(
    loader=FileSystemLoader(_HERE / "dashboard_templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_STATIC = {
    "dashboard.css": ("text/css; charset=utf-8", _HERE / "dashboard_static" / "dashboard.css")
}
_FUNNEL = (Stage.LEAD, Stage.MQL, Stage.SAL, Stage.SQL, Stage.OPPORTUNITY, Stage.CUSTOMER)
_DEFAULT_DAYS = 90
_MAX_FORM = 4096

router = APIRouter(prefix="/dashboard", include_in_schema=False)


def mount_dashboard(app: FastAPI, settings: Settings, store: Store) -> None:
    """Serve ``/dashboard`` from ``app`` (its own definitions service, cached)."""
    app.state.dashboard_definitions = Definitions(Registry(store), settings.config_dir)
    app.include_router(router)


# ---- helpers -------------------------------------------------------------------------------


def _settings(request: Request) -> Settings:
    found: Settings = request.app.state.settings
    return found


def _page(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = _TEMPLATES.get_template(name).render(**context)
    return HTMLResponse(html, status_code=status, headers={"Cache-Control": "no-store"})


def _signed_in(request: Request) -> str | None:
    return session_user(_settings(request), request.cookies.get(COOKIE))


def _to_login(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"/dashboard/login?next={quote(here)}", status_code=303)


def _safe_next(value: str | None) -> str:
    """Only a dashboard path: a login never redirects elsewhere."""
    if value and value.startswith("/dashboard") and "//" not in value and "\\" not in value:
        return value
    return "/dashboard"


def _day(value: str | None) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        return None


class Filters:
    """The form's values, checked; problems become a note on the page, never an error."""

    def __init__(self, query: Mapping[str, str], models: list[str], segments: list[str]) -> None:
        self.notes: list[str] = []
        today = datetime.now(UTC).date()
        until = _day(query.get("until"))
        since = _day(query.get("since"))
        if query.get("until") and until is None:
            self.notes.append("until is not a date (YYYY-MM-DD): today is used")
        if query.get("since") and since is None:
            self.notes.append("since is not a date (YYYY-MM-DD): the last 90 days are shown")
        self.until = until or today
        self.since = since or self.until - timedelta(days=_DEFAULT_DAYS - 1)
        if self.since > self.until:
            self.notes.append("since is after until: the last 90 days are shown")
            self.since = self.until - timedelta(days=_DEFAULT_DAYS - 1)
        self.segment = query.get("segment") or None
        if self.segment is not None and self.segment not in segments:
            self.notes.append(f"unknown segment {self.segment!r}: everyone is shown")
            self.segment = None
        self.model = query.get("model") or None
        if self.model is not None and self.model not in models:
            self.notes.append(f"unknown model {self.model!r}: the default model is used")
            self.model = None

    def window(self) -> ReportWindow:
        return ReportWindow(
            since=datetime.combine(self.since, time(0), tzinfo=UTC),
            until=datetime.combine(self.until + timedelta(days=1), time(0), tzinfo=UTC),
            segment=self.segment,
            generated_at=datetime.now(UTC),
        )

    def query(self, **changes: str) -> str:
        values = {"since": self.since.isoformat(), "until": self.until.isoformat()}
        values |= {"segment": self.segment or "", "model": self.model or ""} | changes
        return urlencode({k: v for k, v in values.items() if v})


def _money(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:,.0f}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


# ---- the overview --------------------------------------------------------------------------


def overview(store: Store, definitions: Definitions, filters: Filters) -> dict[str, Any]:
    """Every report of the page, from the same functions ``revops reports`` prints; they run
    side by side (each reads on its own connection)."""
    book = ReportBook(store, definitions.get(ATTRIBUTION))
    book.refresh()
    window = filters.window()
    forecast_since = window.until - book.definition.forecast_window
    target = definitions.get(HANDOFF).attainment_target

    def sla() -> SlaReport:
        records = SlaBook(store).records(since=window.since)
        chosen = [r for r in records if r.mql_date < window.until]
        return sla_report(chosen, window.generated_at, target=target, since=window.since)

    def attributed() -> tuple[AttributionReport, JourneysReport]:
        attribution = book.attribution(window, filters.model)
        return attribution, book.journeys(window, filters.model, attribution)

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="dashboard") as pool:
        funnel_job = pool.submit(book.funnel, window)
        velocity_job = pool.submit(book.velocity, window)
        attributed_job = pool.submit(attributed)
        forecast_job = pool.submit(
            book.forecast, window.model_copy(update={"since": forecast_since})
        )
        lists_job = pool.submit(book.list_sizes, window)
        sla_job = pool.submit(sla)
        holdouts_job = pool.submit(_holdouts, store)
        funnel, velocity = funnel_job.result(), velocity_job.result()
        attribution, journeys = attributed_job.result()
        forecast, lists, sla_found = forecast_job.result(), lists_job.result(), sla_job.result()
        holdouts = holdouts_job.result()
    return {
        "funnel": funnel,
        "velocity": velocity,
        "attribution": attribution,
        "journeys": journeys,
        "forecast": forecast,
        "sla": sla_found,
        "holdouts": holdouts,
        "charts": _charts(funnel, velocity, attribution, journeys, sla_found, lists),
        "models": list(book.definition.models),
        "segments": list(book.definition.segments),
    }


def _holdouts(store: Store) -> dict[str, HoldoutReport]:
    """Every journey with a holdout: enrolled vs held out (``revops journeys stats``)."""
    log = JourneyLog(store)
    found = {name: log.holdout(name) for name in log.holdout_journeys()}
    return {name: report for name, report in found.items() if report is not None}


def _charts(
    funnel: Any, velocity: Any, attribution: Any, journeys: Any, sla: Any, lists: Any
) -> dict[str, Any]:
    stages = {line.stage: line for line in funnel.overall.stages}
    funnel_bars = [
        Bar(
            stage.value,
            stages[stage].reached,
            f"{stages[stage].reached}"
            + (f"  -> {_pct(stages[stage].conversion)}" if stage is not Stage.CUSTOMER else ""),
        )
        for stage in _FUNNEL
    ]
    parts = list(velocity.stages[0].distribution) if velocity.stages else []
    stay_rows = [
        (
            f"{line.stage.value} (median {seconds_text(_secs(line.median))})",
            [line.distribution[p] for p in parts],
        )
        for line in velocity.stages
        if line.stays
    ]
    channels = attribution.channels[:10]
    teams = [line for line in sla.teams if line.attainment is not None]
    journey_lines = journeys.journeys[:10]
    sizes = sorted(lists.lists, key=lambda s: -(s.members[-1] if s.members else 0))[:6]
    return {
        "funnel": bars("funnel", "Funnel: passes reaching each stage", funnel_bars),
        "stage_time": stacked_bars("stage_time", "Time in stage", stay_rows, parts),
        "attribution": grouped_bars(
            "attribution",
            f"Attribution by channel ({attribution.model})",
            [line.name for line in channels],
            [
                Series("pipeline", [line.pipeline for line in channels]),
                Series("revenue", [line.revenue for line in channels]),
            ],
            _money,
        ),
        "sla": bars(
            "sla",
            "SLA attainment per team",
            [
                Bar(
                    line.name,
                    round(100 * line.attainment),
                    f"{_pct(line.attainment)} of {line.met + line.breached}",
                )
                for line in teams
            ],
            target=round(100 * sla.target),
            colour="#16a34a",
        ),
        "journeys": grouped_bars(
            "journeys",
            "Sends, opens and clicks per journey",
            [line.journey for line in journey_lines],
            [
                Series("sends", [line.sends for line in journey_lines]),
                Series("opens", [line.opens for line in journey_lines]),
                Series("clicks", [line.clicks for line in journey_lines]),
            ],
            lambda v: f"{v:g}",
        ),
        "lists": line_chart(
            "lists",
            "List sizes over time",
            [day.isoformat() for day in lists.days],
            [Series(s.list_name, s.members) for s in sizes],
        ),
    }


def _secs(value: timedelta | None) -> float | None:
    return value.total_seconds() if value is not None else None


@router.get("", response_class=HTMLResponse)
async def overview_page(request: Request) -> Response:
    """The dashboard: every chart for the chosen period, segment and model."""
    user = _signed_in(request)
    if user is None:
        return _to_login(request)
    store: Store = request.app.state.store
    definitions: Definitions = request.app.state.dashboard_definitions
    try:
        definition = await run_in_threadpool(definitions.get, ATTRIBUTION)
    except ConfigError as exc:
        return _page("error.html", 500, user=user, message=str(exc))
    query = dict(request.query_params)
    filters = Filters(query, list(definition.models), list(definition.segments))
    data = await run_in_threadpool(overview, store, definitions, filters)
    return _page(
        "overview.html",
        user=user,
        filters=filters,
        money=_money,
        pct=_pct,
        duration=lambda d: seconds_text(_secs(d)),
        **data,
    )


# ---- one contact -----------------------------------------------------------------------------


@router.get("/contact", response_class=HTMLResponse)
async def contact(request: Request) -> Response:
    """A contact by user id or opaque id: its stages and its workflow in the Temporal UI."""
    user = _signed_in(request)
    if user is None:
        return _to_login(request)
    settings = _settings(request)
    store: Store = request.app.state.store
    asked = (request.query_params.get("q") or "").strip()[:255]

    def find() -> tuple[str | None, list[Any]]:
        found = store.resolve(asked) if asked else None
        if found is None and asked and store.contact(asked) is not None:
            found = asked
        row = store.contact(found) if found else None
        if row is not None and row.merged_into:
            found = row.merged_into
        return found, store.stage_history(found) if found else []

    contact_id, history = await run_in_threadpool(find)
    link = None
    if contact_id is not None:
        workflow = contact_workflow_id(contact_id)
        namespace = quote(settings.temporal_namespace)
        link = f"{settings.temporal_ui}/namespaces/{namespace}/workflows/{quote(workflow)}"
    return _page(
        "contact.html",
        status=200 if contact_id or not asked else 404,
        user=user,
        asked=asked,
        contact_id=contact_id,
        history=history,
        temporal_link=link,
    )


# ---- signing in and out ------------------------------------------------------------------------


@router.get("/login", response_class=HTMLResponse)
async def login_form(request: Request) -> Response:
    """The sign-in form."""
    configured = bool(_settings(request).dashboard_users)
    return _page(
        "login.html",
        next=_safe_next(request.query_params.get("next")),
        error=None,
        configured=configured,
    )


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    """Check the user name and password; a session cookie and back to where they were."""
    body = await request.body()
    form = parse_qs(body[:_MAX_FORM].decode("utf-8", "replace")) if len(body) <= _MAX_FORM else {}
    name = (form.get("user") or [""])[0].strip()
    password = (form.get("password") or [""])[0]
    target = _safe_next((form.get("next") or [""])[0])
    settings = _settings(request)
    ok = bool(name) and await run_in_threadpool(check_password, settings, name, password)
    if not ok:
        return _page(
            "login.html",
            401,
            next=target,
            error="Wrong user name or password.",
            configured=bool(settings.dashboard_users),
        )
    value, lifetime = session_cookie(settings, name)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        COOKIE,
        value,
        max_age=lifetime,
        httponly=True,
        samesite="lax",
        secure=settings.public_url.startswith("https://"),
        path="/dashboard",
    )
    return response


@router.post("/logout")
async def logout() -> Response:
    """End the session."""
    response = RedirectResponse("/dashboard/login", status_code=303)
    response.delete_cookie(COOKIE, path="/dashboard")
    return response


@router.get("/static/{name}")
async def static(name: str) -> Response:
    """The stylesheet (shipped in the package)."""
    found = _STATIC.get(name)
    if found is None:
        return Response("not found", status_code=404, media_type="text/plain")
    media, path = found
    return Response(path.read_bytes(), media_type=media, headers={"Cache-Control": "max-age=3600"})
