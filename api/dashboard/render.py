"""Templates, their filters, the page's language, and the headers every dashboard page carries.

Language: Chinese (zh-CN) first; `?lang=en` (or `?lang=zh`) switches and is kept in a cookie.
Every word comes from the message catalogue, base/i18n.py, as `_()` and `term()` in templates.
Times are shown in EXCHANGE_DISPLAY_TZ (Beijing time by default; base/times.py)."""
from __future__ import annotations

from functools import partial
from pathlib import Path
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from base import i18n, times
from quality import reasons

HERE = Path(__file__).parent
LANG_COOKIE = "exchange_lang"
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


def when(value) -> Markup:
    """A time in the display zone, `2026-12-05 23:00`, in a <time> carrying the ISO instant
    with its offset (SQLite gives back naive UTC; text that is no time passes through)."""
    text = times.shown(value)
    if value is None or value == "" or text == value:
        return Markup(escape(text))
    instant = times.iso(times.parse(value) if isinstance(value, str) else value)
    return Markup(f'<time datetime="{escape(instant)}">{escape(text)}</time>')


def pct(value, digits: int = 1) -> str:
    return "–" if value is None else f"{float(value):.{digits}%}"


def num(value) -> str:
    return "–" if value is None else f"{value:,}" if isinstance(value, int) else str(value)


templates.env.filters.update(when=when, pct=pct, num=num)
templates.env.policies["json.dumps_kwargs"] = {"sort_keys": True, "ensure_ascii": False}


def language(request: Request) -> str:
    """`?lang=` if given, else the cookie it left, else Chinese."""
    asked = request.query_params.get("lang")
    return i18n.pick(asked or request.cookies.get(LANG_COOKIE))


def other_lang_url(request: Request, lang: str) -> str:
    """This page in the other language."""
    other = "en" if lang == "zh" else "zh"
    query = [(k, v) for k, v in request.query_params.multi_items() if k != "lang"] + [("lang", other)]
    return f"{request.url.path}?{urlencode(query)}"


def airflow_url(base: str, source_id: str, dag_run_id: str | None = None) -> str:
    """The run's page in Airflow 3's UI (`base`: Settings.airflow_url), else its DAG's (dag ids:
    Registration.dag_id)."""
    base = base.rstrip("/")
    dag = f"{base}/dags/{quote(f'source__{source_id}', safe='')}"
    return f"{dag}/runs/{quote(dag_run_id, safe='')}" if dag_run_id else dag


def _department_names(request: Request) -> dict[str, str]:
    consumer = getattr(request.app.state, "consumer", None)
    return consumer.catalog.department_names() if consumer is not None else {}


def page(request: Request, name: str, context: dict, status_code: int = 200):
    lang = language(request)
    names = _department_names(request) if getattr(request.state, "dashboard_caller", None) else {}

    def dept(dep_id: str | None, lang: str = lang) -> Markup:
        """A department's name, its id beside (or the id alone when it has no name)."""
        if not dep_id:
            return Markup("–")
        name = names.get(dep_id)
        if not name or name == dep_id:
            return Markup(f'<span class="mono">{escape(dep_id)}</span>')
        return Markup(f'{escape(name)} <span class="muted mono">{escape(dep_id)}</span>')

    def badge(kind: str, value: str | None, prefix: str = "") -> Markup:
        """A state as a coloured label in the page's language; the technical value in its
        data-state and title."""
        if not value:
            return Markup("–")
        v = escape(value)
        return Markup(f'<span class="state {prefix}{v}" data-state="{v}" title="{v}">'
                      f'{escape(i18n.term(kind, value, lang))}</span>')

    def both(kind: str, value: str | None) -> Markup:
        """A term in the page's language, its technical value beside (in Chinese only)."""
        shown = i18n.term(kind, value, lang)
        if lang == "en" or not value or shown == value:
            return Markup(escape(shown))
        return Markup(f'{escape(shown)} <span class="muted mono">{escape(value)}</span>')

    zone = request.app.state.settings.display_tz
    ctx = {"caller": getattr(request.state, "dashboard_caller", None),
           "session_csrf": getattr(request.state, "dashboard_csrf", None),
           "lang": lang, "html_lang": i18n.HTML_LANG[lang], "_": partial(i18n.t, lang=lang),
           "term": partial(i18n.term, lang=lang), "dept": dept, "badge": badge, "both": both,
           "reason": partial(reasons.explain, lang=lang), "dept_name": lambda d: names.get(d) or d,
           "other_lang_url": other_lang_url(request, lang),
           "zone_label": i18n.t(f"zone.{zone}", lang) if f"zone.{zone}" in i18n.MESSAGES else zone,
           "zone_offset": times.offset_label(times.zone(zone)), **context}
    resp = templates.TemplateResponse(request, name, ctx, status_code=status_code, headers=PAGE_HEADERS)
    if request.query_params.get("lang"):
        resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, path="/dashboard", samesite="strict",
                        secure=request.url.scheme == "https")
    return resp


def error(request: Request, status_code: int, title: str, detail: str):
    return page(request, "error.html", {"title": title, "detail": detail}, status_code)
