"""Declarative files (types, items, registrations): TOML read with its keys and types checked.

Every refusal is one line naming the file, the key (dotted: `connector.batch_rows`,
`checks[2].column`, `status_map."存续"`), what was expected and what was found.
"""
from __future__ import annotations

import json
import math
import re
import tomllib
from collections.abc import Callable, Collection
from datetime import date, datetime, time
from pathlib import Path
from typing import Any

from base.errors import ConfigError

BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# kind -> its test
KINDS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v),
    "boolean": lambda v: isinstance(v, bool),
    "table": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def load(path: Path, where: str, known: Collection[str],
         required: Collection[str] = frozenset()) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{where}: the file must be UTF-8 ({exc.reason} at byte {exc.start})") from None
    except OSError as exc:
        raise ConfigError(f"{where}: cannot be read ({exc.strerror or type(exc).__name__})") from None
    return loads(text, where, known, required)


def loads(text: str, where: str, known: Collection[str],
          required: Collection[str] = frozenset()) -> dict[str, Any]:
    """`load` of TOML text (e.g. a registration kept in the catalogue)."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: not valid TOML: {one_line(str(exc))}") from None
    return check_keys(raw, where, known, required)


def check_keys(raw: dict[str, Any], where: str, known: Collection[str],
               required: Collection[str] = frozenset(), table: str = "") -> dict[str, Any]:
    """Unknown keys refused with the known ones; missing ones named. `table`: the dotted key
    of a nested table ("connector"), "" for the top level."""
    inside = f" in {table}" if table else ""
    unknown = set(raw) - set(known)
    if unknown:
        raise ConfigError(f"{where}: unknown keys{inside} {sorted(unknown)}; known: {sorted(known)}")
    missing = set(required) - set(raw)
    if missing:
        raise ConfigError(f"{where}: missing keys{inside} {sorted(missing)}")
    return raw


def one_line(text: str) -> str:
    return " ".join(str(text).split())


def key_of(parent: str, name: str | int) -> str:
    """The dotted key of `name` under `parent`: a.b, a."quoted key", a[2] (1-based)."""
    if isinstance(name, int):
        return f"{parent}[{name + 1}]"
    part = name if BARE_KEY.fullmatch(name) else "".join(
        c if c.isprintable() else f"\\u{ord(c):04x}" for c in json.dumps(name, ensure_ascii=False))
    return f"{parent}.{part}" if parent else part


_FOUND = ((bool, "a boolean"), (int, "an integer"), (float, "a float"), (str, "a string"),
          (dict, "a table"), (list, "an array"), (datetime, "a date-time"), (date, "a date"),
          (time, "a time"))          # bool before int, datetime before date: subclasses first


def found(value: object) -> str:
    """What a value is, for a message: `an integer (5)`, `a string ('many')`."""
    kind = next((k for t, k in _FOUND if isinstance(value, t)), f"a {type(value).__name__}")
    text = repr(value)
    return f"{kind} ({text if len(text) <= 60 else text[:57] + '...'})"


def _article(kind: str) -> str:
    return f"an {kind}" if kind[0] in "aeiou" else f"a {kind}"


def wrong(where: str, key: str, expected: str, value: object) -> ConfigError:
    return ConfigError(f"{where}: {key} must be {expected}, not {found(value)}")


def typed(value: Any, kind: str, key: str, where: str) -> Any:
    """`value` if it is of `kind` (see KINDS), else a ConfigError naming the key and both types.
    "number" takes an integer or a finite float; "array of K" / "table of K" check each item."""
    if kind.startswith(("array of ", "table of ")):
        outer, inner = kind.split(" of ", 1)
        inner = inner.removesuffix("s") if inner != "tables" else "table"
        if not KINDS[outer](value):
            raise wrong(where, key, _article(kind), value)
        items = enumerate(value) if outer == "array" else value.items()
        for name, item in items:
            typed(item, inner, key_of(key, name), where)
        return value
    if not KINDS[kind](value):
        raise wrong(where, key, _article(kind), value)
    return value


def text(value: Any, key: str, where: str, longest: int) -> str:
    """A string of at most `longest` characters."""
    typed(value, "string", key, where)
    if len(value) > longest:
        raise ConfigError(f"{where}: {key} is {len(value)} characters long; at most {longest}")
    return str(value)


def matching(value: Any, pattern: re.Pattern[str], key: str, where: str, rule: str) -> str:
    """A string the whole of which matches `pattern`; `rule` says in words what is allowed."""
    typed(value, "string", key, where)
    if not pattern.fullmatch(value):
        raise ConfigError(f"{where}: {key} {value!r} is not allowed: {rule}")
    return str(value)


def between(value: Any, lo: float, hi: float, key: str, where: str, kind: str = "integer") -> Any:
    typed(value, kind, key, where)
    if not lo <= value <= hi:
        raise ConfigError(f"{where}: {key} must be between {lo} and {hi}, not {value!r}")
    return value
