"""The environment Airflow runs in: this project's airflow.cfg, state under EXCHANGE_HOME."""
from __future__ import annotations

import os

from exchange.settings import ROOT, get_settings


def airflow_env(base: dict | None = None) -> dict:
    env = dict(os.environ if base is None else base)
    home = get_settings().home
    env.setdefault("EXCHANGE_ROOT", str(ROOT))
    env.setdefault("EXCHANGE_HOME", str(home))
    env.setdefault("AIRFLOW_HOME", str(home / "airflow"))
    env.setdefault("AIRFLOW_CONFIG", str(ROOT / "airflow.cfg"))
    env.setdefault("GX_ANALYTICS_ENABLED", "false")
    env.setdefault("SCARF_ANALYTICS", "false")
    env.setdefault("DO_NOT_TRACK", "1")
    return env
