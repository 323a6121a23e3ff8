"""The run ledger: runs and their owners, pull state, quarantine, quality gates, alerts, monitoring."""
