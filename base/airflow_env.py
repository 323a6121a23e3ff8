"""The environment Airflow runs in: this project's airflow.cfg, state under EXCHANGE_HOME."""
from __future__ import annotations

import os
from pathlib import Path

from cryptography.fernet import Fernet

from base.settings import ROOT, get_settings


def airflow_env(base: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ if base is None else base)
    home = get_settings().home
    env.setdefault("EXCHANGE_ROOT", str(ROOT))
    env.setdefault("EXCHANGE_HOME", str(home))
    env.setdefault("AIRFLOW_HOME", str(home / "airflow"))
    env.setdefault("AIRFLOW_CONFIG", str(ROOT / "airflow.cfg"))
    env.setdefault("GX_ANALYTICS_ENABLED", "false")
    env.setdefault("SCARF_ANALYTICS", "false")
    env.setdefault("DO_NOT_TRACK", "1")
    if not env.get("AIRFLOW__CORE__FERNET_KEY"):
        env["AIRFLOW__CORE__FERNET_KEY"] = fernet_key(Path(env["AIRFLOW_HOME"]))
    return env


def use_fernet_key() -> None:
    """This process reads Airflow's stored connections with its home's key (before Airflow first
    asks for it)."""
    if not os.environ.get("AIRFLOW__CORE__FERNET_KEY"):
        home = Path(os.environ.get("AIRFLOW_HOME") or get_settings().home / "airflow")
        os.environ["AIRFLOW__CORE__FERNET_KEY"] = fernet_key(home)


def fernet_key(airflow_home: Path) -> str:
    """The key Airflow encrypts stored connections with (the silos' passwords): one per Airflow
    home, made once, kept private beside its metadata database. Set AIRFLOW__CORE__FERNET_KEY
    (or a secrets backend) anywhere real."""
    path = airflow_home / "fernet.key"
    if not path.exists():
        airflow_home.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(Fernet.generate_key().decode() + "\n")
        except FileExistsError:       # made meanwhile by another process: use that one
            pass
    return path.read_text().strip()
