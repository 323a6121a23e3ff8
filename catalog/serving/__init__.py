"""Serving consumers: access rules, the audit log and its checkpoints, lookups, materials,
DCAT, record status, dashboard sessions."""
