"""The web dashboard under /dashboard: server-rendered pages (Jinja2), charts as inline SVG,
a login for auditor departments (every page) and source departments' stewards (the objections
to their datasets). Hidden from the OpenAPI schema."""
from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from api.dashboard import auth, docs, pages, session
from api.dashboard.render import HERE


def install(app: FastAPI) -> None:
    app.state.dashboard_secret = session.load_secret(app.state.settings.dashboard_secret)
    for module in (auth, pages, docs):
        app.include_router(module.router)
    app.mount("/dashboard/static", StaticFiles(directory=HERE / "static"), name="dashboard-static")
    app.add_exception_handler(auth.LoginRequired, auth.to_login)
    app.add_exception_handler(auth.AuditorOnly, auth.to_forbidden)
