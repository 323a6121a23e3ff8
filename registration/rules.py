"""What a registration file may say: its keys, their kinds and the patterns its identifiers match."""
from __future__ import annotations

import re

SHARING = ("unconditional", "conditional", "not_shared")
CYCLES = {"hourly": 1 / 24, "daily": 1, "weekly": 7, "monthly": 30, "quarterly": 91, "yearly": 365}
TOP_KEYS = {"id", "department", "department_name", "certificate_type", "dataset", "title",
            "sharing", "update_cycle", "schedule", "steward", "description", "connector",
            "mapping", "constants", "status_map", "checks", "gates", "run"}
REQUIRED = {"id", "department", "certificate_type", "connector", "mapping"}
ID_RE = re.compile(r"[a-z][a-z0-9_]{1,62}")
ID_RULE = "lower-case letters, digits and _, starting with a letter, 2 to 63 characters"
DATASET_RE = re.compile(r"(?=.{2,128}\Z)[a-z][a-z0-9_]{0,62}(\.[a-z][a-z0-9_]{0,62})?")
DATASET_RULE = ("TYPE.DEPARTMENT or one name: lower-case letters, digits and _, each part starting "
                "with a letter, at most 128 characters")
PRESETS = ("@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@quarterly", "@yearly")
# key -> (kind, longest) of the free text keys
TEXTS = {"department_name": 255, "title": 255, "steward": 255, "description": 10_000}
TABLES = {"connector": "table", "mapping": "table of strings", "constants": "table of strings",
          "status_map": "table of strings", "checks": "array of tables", "gates": "table",
          "run": "table"}
