"""The audit action of a request, named from the route it matched."""
from __future__ import annotations

ROUTE_ACTIONS = {"/v1/holders/records": "lookup", "/v1/holders/access-report": "access_report",
                 "/v1/records/{record_id}/bundle": "bundle", "/v1/records/{record_id}/status": "status",
                 "/v1/items/{code}/materials-check": "materials", "/v1/datasets": "catalogue",
                 "/v1/catalogue.jsonld": "catalogue", "/v1/items": "items"}


def action_of(scope) -> str:
    """The audit action of a request: its route's (as the consumer service names it), the
    route's path for others, `unknown_path` when no route matched."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return "unknown_path" if path is None else ROUTE_ACTIONS.get(path, path)
