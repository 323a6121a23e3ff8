"""Templates, their filters, and the headers every dashboard page carries."""
from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from fastapi import Request
from fastapi.templating import Jinja2Templates

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
# no script, no inline style, nothing from elsewhere; forms post only here. Referrer-Policy
# same-origin, not no-referrer: under no-referrer a browser sends `Origin: null` with a form's
# POST, and the dashboard's POSTs are refused unless their Origin is its own (CSRF).
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "same-origin", "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def when(value) -> str:
    """A time as `YYYY-MM-DD HH:MM UTC` (SQLite gives back naive UTC; text passes through)."""
    if value is None or value == "":
        return "–"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime):
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def pct(value, digits: int = 1) -> str:
    return "–" if value is None else f"{float(value):.{digits}%}"


def num(value) -> str:
    return "–" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


templates.env.filters.update(when=when, pct=pct, num=num)


def airflow_url(base: str, source_id: str, dag_run_id: str | None = None) -> str:
    """The run's page in Airflow 3's UI (`base`: Settings.airflow_url), else its DAG's (dag ids:
    Registration.dag_id)."""
    base = base.rstrip("/")
    dag = f"{base}/dags/{quote(f'source__{source_id}', safe='')}"
    return f"{dag}/runs/{quote(dag_run_id, safe='')}" if dag_run_id else dag


def page(request: Request, name: str, context: dict, status_code: int = 200):
    ctx = {"caller": getattr(request.state, "dashboard_caller", None),
           "session_csrf": getattr(request.state, "dashboard_csrf", None), **context}
    return templates.TemplateResponse(request, name, ctx, status_code=status_code, headers=PAGE_HEADERS)


def error(request: Request, status_code: int, title: str, detail: str):
    return page(request, "error.html", {"title": title, "detail": detail}, status_code)
