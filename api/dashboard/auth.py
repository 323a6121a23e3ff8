"""Login with an auditor department's exchange key; a signed session cookie after that.
Logins (allowed or refused) and logouts are written to the access audit log."""
from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse

from api.dashboard import session
from api.dashboard.render import page
from catalog import audit
from catalog.access import Caller
from catalog.consumer import PENDING
from exchange.errors import RateLimited, Unauthenticated

router = APIRouter(prefix="/dashboard", include_in_schema=False)
PURPOSE = "dashboard"


class LoginRequired(Exception):
    def __init__(self, next_url: str):
        self.next_url = next_url


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


async def auditor(request: Request) -> Caller:
    """The dependency of every page but the login: the session's auditor, else a redirect."""
    key_id = session.read(request.app.state.dashboard_secret, request.cookies.get(session.COOKIE))
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if key_id is None:
        raise LoginRequired(target)
    try:
        caller = request.app.state.consumer.access.current(key_id)
    except Unauthenticated:
        raise LoginRequired(target) from None
    if caller.role != "auditor":
        raise LoginRequired(target)
    request.state.dashboard_caller = caller
    return caller


AuditorDep = Annotated[Caller, Depends(auditor)]


def to_login(request: Request, exc: LoginRequired):
    from urllib.parse import urlencode
    return RedirectResponse(f"/dashboard/login?{urlencode({'next': exc.next_url})}", status_code=303)


@router.get("/login")
async def login_form(request: Request, next: str | None = None):
    return page(request, "login.html", {"next": _safe_next(next), "message": None})


@router.post("/login")
async def login(request: Request, key: Annotated[str, Form(max_length=200)] = "",
                next: Annotated[str, Form(max_length=500)] = "/dashboard/"):
    access = request.app.state.consumer.access
    host = request.client.host if request.client else "-"
    ctx = {"next": _safe_next(next)}
    try:
        caller = access.authenticate(key.strip())
    except Unauthenticated as exc:
        record(request, "dashboard.login", "refused:401", detail={"reason": str(exc)[:300], "client": host})
        try:
            request.app.state.limiter.take(f"unauthenticated:{host}")
        except RateLimited as limited:
            return page(request, "login.html", {**ctx, "message": str(limited)}, 429)
        return page(request, "login.html", {**ctx, "message": str(exc)}, 401)
    if caller.role != "auditor":
        record(request, "dashboard.login", "refused:403", caller.department, subject=caller.key_id,
               detail={"reason": "not an auditor department"})
        return page(request, "login.html", {**ctx, "message": f"department {caller.department} is a "
                    f"{caller.role}; the dashboard shows the access audit, so only an auditor "
                    "department's key may log in"}, 403)
    record(request, "dashboard.login", "allowed", caller.department, subject=caller.key_id)
    resp = RedirectResponse(ctx["next"], status_code=303)
    resp.set_cookie(session.COOKIE, session.make(request.app.state.dashboard_secret, caller.key_id),
                    max_age=session.TTL, path="/dashboard", httponly=True, samesite="strict",
                    secure=request.url.scheme == "https")
    return resp


@router.post("/logout")
async def logout(request: Request, caller: AuditorDep):
    record(request, "dashboard.logout", "done", caller.department, subject=caller.key_id)
    resp = RedirectResponse("/dashboard/login", status_code=303)
    resp.delete_cookie(session.COOKIE, path="/dashboard", httponly=True, samesite="strict")
    return resp
