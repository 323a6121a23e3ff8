"""Which requests are audited, and the audit action of a request, named from the route it matched."""
from __future__ import annotations

# documents anyone may fetch, not audited: they hold nothing about a holder, and auditing reads
# anyone may make would let anyone grow the audit chain as fast as the rate limit allows
PUBLIC_PREFIXES = ("/v1/keys/", "/v1/audit/checkpoints")
PUBLIC_PATHS = frozenset({"/v1/catalogue.jsonld", "/v1/items",      # public metadata (routes/catalogue.py)
                          "/v1/federation/cosignatures"})              # a witness's cosignatures

ROUTE_ACTIONS = {"/v1/holders/records": "lookup", "/v1/holders/access-report": "access_report",
                 "/v1/records/{record_id}/bundle": "bundle", "/v1/records/{record_id}/status": "status",
                 "/v1/items/{code}/materials-check": "materials", "/v1/datasets": "catalogue",
                 "/v1/records/{record_id}/objections": "objection", "/v1/objections/{objection_id}": "objection_read",
                 "/v1/subscriptions": "subscription", "/v1/subscriptions/{subscription_id}": "subscription.remove",
                 "/v1/notices": "notices.replay", "/v1/federation/datasets": "mirror_list",
                 "/v1/federation/datasets/{dataset}/versions/{version}": "mirror_version",
                 "/v1/federation/datasets/{dataset}/versions/{version}/{name}": "mirror_file",
                 "/v1/federation/access": "peer_access"}


def audited(path: str) -> bool:
    """Every request under /v1/ but the public documents leaves an audit entry."""
    return path.startswith("/v1/") and not path.startswith(PUBLIC_PREFIXES) and path not in PUBLIC_PATHS


def action_of(scope) -> str:
    """The audit action of a request: its route's (as the consumer service names it), the
    route's path for others, `unknown_path` when no route matched."""
    route = scope.get("route")
    path = getattr(route, "path", None)
    return "unknown_path" if path is None else ROUTE_ACTIONS.get(path, path)
