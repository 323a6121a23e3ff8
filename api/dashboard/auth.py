"""Login with an exchange key of an auditor department (every page) or of a source department,
the `department` of at least one dataset (its stewards: the objections to its own datasets,
nothing else); a session kept in the catalogue after that, named by a signed cookie, ended by
logout in every worker. Both forms carry a CSRF token and must post from this dashboard's own
origin (api/dashboard/session.py). Logins (allowed or refused) and logouts are written to the
access audit log. A steward's session asking for an auditor's page gets a 403 page."""
from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from api.dashboard import session
from api.dashboard.render import error, language, page
from base import i18n
from base.errors import RateLimited, Unauthenticated
from catalog.serving import audit, dashboard_sessions
from catalog.serving.access import Caller
from catalog.serving.consumer import PENDING

router = APIRouter(prefix="/dashboard", include_in_schema=False)
PURPOSE = "dashboard"


class LoginRequired(Exception):
    def __init__(self, next_url: str):
        self.next_url = next_url


class AuditorOnly(Exception):
    """A steward's session asked for a page only an auditor department may open."""

    def __init__(self, department: str):
        self.department = department


STEWARD_HOME = "/dashboard/objections"


def record(request: Request, action: str, outcome: str, department: str = "-", **kw) -> None:
    """An audit entry, written before the response starts (api/auditing.py)."""
    row = audit.entry(department=department, purpose=PURPOSE, action=action, outcome=outcome, **kw)
    pending = PENDING.get()
    if pending is None:
        audit.append_many(request.app.state.consumer.engine, [row])
    else:
        pending.append(row)


def _safe_next(value: str | None) -> str:
    """Only a path inside the dashboard (no open redirect)."""
    if (value and value.startswith("/dashboard/") and "\\" not in value
            and not value.startswith(("/dashboard/login", "/dashboard/logout"))):
        return value
    return "/dashboard/"


def _session_row(request: Request) -> str | None:
    """The catalogue's id of the session in the request's cookie, if the cookie is genuine."""
    token = session.read(request.app.state.dashboard_secret, request.cookies.get(session.COOKIE))
    return dashboard_sessions.row(token) if token else None


def stewarded(request: Request, caller: Caller) -> list[str]:
    """The datasets whose objections the caller's stewards answer (its department is their
    source department); empty for an auditor or consumer department that is no source."""
    return request.app.state.consumer.access.stewarded(caller.department)


def _signed_in(request: Request) -> Caller:
    """The caller of the request's session, else LoginRequired. The session must be live in
    the catalogue (not logged out, not expired) and its key still good."""
    row = _session_row(request)
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if request.method != "GET":      # a form posted after the session ended: back to the page it was on
        target = target.rsplit("/", 1)[0] if target.endswith("/resolve") else "/dashboard/"
    key_id = dashboard_sessions.key_of(request.app.state.consumer.engine, row) if row else None
    if key_id is None:
        raise LoginRequired(target)
    try:
        caller = request.app.state.consumer.access.current(key_id)
    except Unauthenticated:
        raise LoginRequired(target) from None
    if caller.role != "auditor" and not stewarded(request, caller):
        raise LoginRequired(target)
    request.state.dashboard_caller = caller
    request.state.dashboard_session = row
    request.state.dashboard_csrf = session.csrf_token(request.app.state.dashboard_secret, row)
    return caller


async def auditor(request: Request) -> Caller:
    """The dependency of every page but the login and the objections: the session's auditor,
    else a redirect to the login (no session), or a 403 page (a steward's session)."""
    caller = _signed_in(request)
    if caller.role != "auditor":
        raise AuditorOnly(caller.department)
    return caller


async def member(request: Request) -> Caller:
    """The dependency of the objections pages and the logout: an auditor's or a steward's session."""
    return _signed_in(request)


AuditorDep = Annotated[Caller, Depends(auditor)]
MemberDep = Annotated[Caller, Depends(member)]


def to_login(request: Request, exc: LoginRequired):
    return RedirectResponse(f"/dashboard/login?{urlencode({'next': exc.next_url})}", status_code=303)


def to_forbidden(request: Request, exc: AuditorOnly):
    lang = language(request)
    return error(request, 403, i18n.t("error.auditor_only_title", lang),
                 i18n.t("error.auditor_only", lang, department=exc.department))


def _cookie(resp, name: str, value: str, max_age: int, request: Request) -> None:
    resp.set_cookie(name, value, max_age=max_age, path="/dashboard", httponly=True, samesite="strict",
                    secure=request.url.scheme == "https")


@router.get("/login")
async def login_form(request: Request, next: str | None = None):
    """The form, with a token bound to a pre-session cookie (made here if there is none)."""
    secret = request.app.state.dashboard_secret
    pre_cookie = request.cookies.get(session.LOGIN_COOKIE)
    fresh = session.read(secret, pre_cookie, "login") is None
    if fresh:
        pre_cookie = session.make(secret, secrets.token_urlsafe(32), "login", session.LOGIN_TTL)
    resp = page(request, "login.html", {"next": _safe_next(next), "message": None,
                                        "csrf": session.csrf_token(secret, pre_cookie)})
    if fresh:
        _cookie(resp, session.LOGIN_COOKIE, pre_cookie, session.LOGIN_TTL, request)
    return resp


@router.post("/login")
async def login(request: Request, key: Annotated[str, Form(max_length=200)] = "",
                next: Annotated[str, Form(max_length=500)] = "/dashboard/",
                csrf: Annotated[str, Form(max_length=100)] = ""):
    access = request.app.state.consumer.access
    host = request.client.host if request.client else "-"
    secret = request.app.state.dashboard_secret
    ctx = {"next": _safe_next(next)}
    pre_cookie = request.cookies.get(session.LOGIN_COOKIE)
    if (not session.same_origin(request) or session.read(secret, pre_cookie, "login") is None
            or not session.csrf_ok(secret, pre_cookie, csrf)):
        record(request, "dashboard.login", "refused:403",
               detail={"reason": "cross-site or forged login form", "client": host,
                       "origin": (request.headers.get("origin") or "")[:100]})
        return page(request, "login.html", {**ctx, "message": i18n.t("login.forged", language(request)),
                                            "csrf": None}, 403)
    ctx["csrf"] = session.csrf_token(secret, pre_cookie)
    try:
        caller = access.authenticate(key.strip())
    except Unauthenticated as exc:
        record(request, "dashboard.login", "refused:401", detail={"reason": str(exc)[:300], "client": host})
        try:
            request.app.state.limiter.take(f"unauthenticated:{host}")
        except RateLimited as limited:
            return page(request, "login.html", {**ctx, "message": str(limited)}, 429)
        return page(request, "login.html", {**ctx, "message": str(exc)}, 401)
    steward = caller.role != "auditor"
    if steward and not stewarded(request, caller):
        record(request, "dashboard.login", "refused:403", caller.department, subject=caller.key_id,
               detail={"reason": "neither an auditor nor a source department"})
        lang = language(request)
        return page(request, "login.html", {**ctx, "message": i18n.t(
            "login.not_auditor", lang, department=caller.department,
            role=i18n.term("role", caller.role, lang))}, 403)
    record(request, "dashboard.login", "allowed", caller.department, subject=caller.key_id,
           detail={"as": "steward"} if steward else None)
    token = dashboard_sessions.open_session(request.app.state.consumer.engine, caller.key_id, session.TTL)
    target = ctx["next"]
    if steward and not (target == STEWARD_HOME or target.startswith(STEWARD_HOME + "/")):
        target = STEWARD_HOME                       # the only pages a steward may open
    resp = RedirectResponse(target, status_code=303)
    _cookie(resp, session.COOKIE, session.make(secret, token), session.TTL, request)
    resp.delete_cookie(session.LOGIN_COOKIE, path="/dashboard", httponly=True, samesite="strict")
    return resp


@router.post("/logout")
async def logout(request: Request, caller: MemberDep, csrf: Annotated[str, Form(max_length=100)] = ""):
    row = request.state.dashboard_session
    if not session.same_origin(request) or not session.csrf_ok(request.app.state.dashboard_secret, row, csrf):
        record(request, "dashboard.logout", "refused:403", caller.department, subject=caller.key_id,
               detail={"reason": "cross-site or forged logout form"})
        lang = language(request)
        return error(request, 403, i18n.t("logout.refused_title", lang), i18n.t("logout.refused", lang))
    dashboard_sessions.end(request.app.state.consumer.engine, row)      # in every worker, at once
    record(request, "dashboard.logout", "done", caller.department, subject=caller.key_id)
    resp = RedirectResponse("/dashboard/login", status_code=303)
    resp.delete_cookie(session.COOKIE, path="/dashboard", httponly=True, samesite="strict")
    return resp
