"""The message catalogue: Chinese first, English on request, every key the dashboard uses."""
from __future__ import annotations

import re

from base import i18n
from base.settings import ROOT

TEMPLATES = ROOT / "api" / "dashboard" / "templates"
PY = [ROOT / "api" / "dashboard" / n for n in ("pages.py", "auth.py", "docs.py", "charts.py", "render.py")]


def test_terms_are_chinese_first_with_the_technical_name_beside():
    assert i18n.term("sharing", "unconditional") == "无条件共享"
    assert i18n.term("sharing", "conditional", "en") == "conditional"
    assert i18n.term_both("sharing", "not_shared") == "不予共享 (not_shared)"
    assert [i18n.term("run", s) for s in ("published", "failed", "held")] == ["已发布", "失败", "已暂停"]
    assert [i18n.term("record", s) for s in ("revoked", "expired")] == ["已撤销", "已过期"]
    assert i18n.term("run", "something_new") == "something_new"              # unknown: as it is
    assert i18n.t("tile.failed", "en", n=10) == "failed of the last 10 runs"
    assert i18n.t("no.such.key") == "no.such.key"


def test_language_choice():
    assert [i18n.pick(x) for x in ("en", "en-GB", "zh_CN", "zh-TW", "fr", "", None)] == \
        ["en", "en", "zh", "zh", "zh", "zh", "zh"]


def test_every_key_the_dashboard_uses_is_in_both_languages():
    used = set()
    for f in TEMPLATES.glob("*.html"):
        text = f.read_text(encoding="utf-8")
        used |= {k for k in re.findall(r"""_\('([a-z_.]+)'""", text) if not k.endswith(".")}   # not prefixes
        used |= {f"{k}.{v}" for k, v in re.findall(r"""term\('(\w+)', '(\w+)'\)""", text)}
    used |= {f"history.field.{k}" for k in ("steward", "description", "department", "department_name", "sharing",
                                            "update_cycle")}              # catalog.service.METADATA
    for f in PY:
        used |= set(re.findall(r"""i18n\.t\(\s*["']([a-z_.]+)["']""", f.read_text(encoding="utf-8")))
    assert len(used) > 100
    missing = sorted(k for k in used if k not in i18n.MESSAGES and k not in i18n.TERMS)
    assert missing == []
    for key, pair in {**i18n.MESSAGES, **i18n.TERMS}.items():
        assert len(pair) == 2 and all(pair), key
        assert re.search(r"[\u4e00-\u9fff]", pair[0]) or key in ("nav.lang_other", "zone.UTC", "reason.field_sep"), key


def test_no_english_words_left_in_the_templates():
    """Text between tags is a catalogue call, a value, or punctuation: no stray English."""
    for f in TEMPLATES.glob("*.html"):
        text = re.sub(r"\{[{%#].*?[}%#]\}", "", f.read_text(encoding="utf-8"), flags=re.S)
        words = [w for w in re.findall(r">([^<]+)<", text) if re.search(r"[A-Za-z]{3,}", w)]
        commands = ("Airflow", "exchange quarantine  --json")                   # names, not words
        assert [w.strip() for w in words if w.strip() not in commands] == [], f.name
