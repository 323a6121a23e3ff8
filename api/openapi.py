"""The API's contract beyond its 200s, and its docs page served by the exchange itself.

`problems(...)`: the error statuses a route can answer, each an RFC 9457 problem detail
(`application/problem+json`, the body api/problems.py builds), for a route's `responses=`.
`install_docs(app)`: /docs, Swagger UI from the swagger-ui-bundle-v2 package (its dist files,
mounted at /docs/static), so the page works on an intranet with no way to a CDN."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from swagger_ui_bundle import swagger_ui_path

from api.problems import MEDIA, title

STATIC = "/docs/static"


class Problem(BaseModel):
    """An error (RFC 9457 problem details), as every refused or failed request is answered."""
    type: str = Field(description="`urn:exchange:problem:<Kind>` naming the exchange's error, or "
                                  "`about:blank`", examples=["urn:exchange:problem:InvalidRequest"])
    title: str = Field(description="the status in words", examples=["请求有误 (Bad request)"])
    status: int = Field(ge=400, le=599, description="the HTTP status, repeated", examples=[400])
    detail: str = Field(description="what was wrong and what to do next (never internals)",
                        examples=["purpose is neither a known service-item code (see GET /v1/items) "
                                  "nor a case number as case:NUMBER (4-64 of A-Z a-z 0-9 . _ / -)"])


WHEN = {400: "a parameter or the body broke a rule the exchange checks (the purpose, the holder id …)",
        401: "no exchange key, or one that is unknown, revoked or expired",
        403: "the department may not see this for this purpose",
        404: "no such record, service item or published document",
        409: "it clashes with what the exchange holds (an objection already open on the record, "
             "or one already closed)",
        413: "the request body is larger than 16 KiB",
        422: "a parameter or the body is missing or malformed",
        429: "too many requests from this department (or this address, unauthenticated or "
             "reading public metadata): wait Retry-After seconds"}
_SCHEMA = Problem.model_json_schema()
HEADERS = {401: {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
           429: {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}}
AUTHED = (400, 401, 422, 429)          # every route behind a key and a purpose
PUBLIC = (400, 422, 429)               # public metadata: no key; a purpose, if given, is checked


def problems(*statuses: int) -> dict[int | str, dict]:
    """`responses=` for a route: each status a problem+json body (the schema of Problem)."""
    return {s: {"description": f"{title(s)}: {WHEN[s]}", "content": {MEDIA: {"schema": _SCHEMA}},
                **({"headers": HEADERS[s]} if s in HEADERS else {})} for s in sorted(set(statuses))}


def install_docs(app: FastAPI) -> None:
    """/docs with Swagger UI's files from this exchange (create the app with docs_url=None)."""
    app.mount(STATIC, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")

    @app.get("/docs", include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"), title=f"{app.title} - docs",
            oauth2_redirect_url=root + "/docs/oauth2-redirect",
            swagger_js_url=f"{root}{STATIC}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC}/favicon-32x32.png")

    @app.get("/docs/oauth2-redirect", include_in_schema=False)
    async def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()


# A holder id's format, stated in the OpenAPI only: holder_key (catalog/serving/holders.py)
# normalises any spelling (NFKC, upper-case) and checks the check digit, a 400 when it fails
USCC_PATTERN = r"^[0-9A-HJ-NPQRTUWXY]{2}\d{6}[0-9A-HJ-NPQRTUWXY]{10}$"
RESIDENT_ID_PATTERN = r"^\d{17}[0-9X]$"
HOLDER_ID_DOC = (
    "18 characters once normalised (full-width to half-width, lower to upper case): a unified "
    f"social credit code (USCC, GB 32100: `{USCC_PATTERN}`) or a resident ID (GB 11643: "
    f"`{RESIDENT_ID_PATTERN}`), with a valid check character; anything else is a 400")
HOLDER_ID_EXAMPLES = ["91350100M000100Y43", "11010519491231002X"]
