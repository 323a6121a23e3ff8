"""The CLI in the users' language (#18): the main listings have Chinese titles and column
headers with the technical name beside (`状态 (state)`), terms read `已发布 (published)`, times
in Beijing time; with --json the same commands keep their technical keys and values."""
from __future__ import annotations

import json

import pytest

from base.i18n import term_both
from cli import main as cli


@pytest.fixture
def home(published, monkeypatch):
    from base.settings import reset_settings
    from tests.conftest import TEST_PASSPHRASE

    monkeypatch.setenv("EXCHANGE_HOME", str(published.home))
    monkeypatch.delenv("EXCHANGE_CATALOG_URL", raising=False)
    monkeypatch.delenv("EXCHANGE_SOURCES_DIR", raising=False)
    monkeypatch.delenv("EXCHANGE_DISPLAY_TZ", raising=False)          # Beijing time by default
    monkeypatch.setenv("EXCHANGE_KEY_PASSPHRASE", TEST_PASSPHRASE)
    monkeypatch.setenv("COLUMNS", "400")                               # a cell on one line
    reset_settings()
    yield published
    reset_settings()


def _both(capsys, *argv: str) -> tuple[str, list[dict]]:
    """The table a person sees, and the --json of the same command."""
    assert cli(list(argv)) == 0
    text = capsys.readouterr().out
    assert cli([*argv, "--json"]) == 0
    return text, json.loads(capsys.readouterr().out)


def test_datasets(home, capsys):
    text, rows = _both(capsys, "datasets")
    assert set(rows[0]) >= {"dataset", "title", "sharing", "update_cycle", "version", "records", "published_at"}
    row = rows[0]
    assert row["sharing"] in ("unconditional", "conditional", "not_shared")
    for words in ("数据集 (datasets)", "数据集 (dataset)", "共享属性 (sharing)", "更新周期 (update_cycle)",
                  "发布时间 (published_at)", term_both("sharing", row["sharing"]),
                  term_both("cycle", row["update_cycle"])):
        assert words in text, words
    assert "+08:00" in text and "sharing" in row and row["sharing"] not in ("无条件共享", "有条件共享")


def test_runs(home, capsys):
    text, rows = _both(capsys, "runs")
    assert rows[0]["state"] == "published" and rows[0]["started_at"].endswith("+00:00")
    for words in ("运行 (runs)", "状态 (state)", "已发布 (published)", "开始时间 (started_at)", "+08:00"):
        assert words in text, words


def test_status(home, capsys):
    text, rows = _both(capsys, "status")
    mine = [r for r in rows if r["dataset"] is not None][0]
    assert mine["result"] == "published" and mine["freshness"] in ("fresh", "late", "stale", "never")
    for words in ("数据源 (sources)", "更新情况 (freshness)", "结果 (result)", "已发布 (published)",
                  term_both("freshness", mine["freshness"]), term_both("cycle", mine["update_cycle"])):
        assert words in text, words


def test_keys_list(home, capsys):
    text, rows = _both(capsys, "keys", "list")
    assert {r["status"] for r in rows} == {"active"} and set(rows[0]) >= {"kid", "status", "heads_signed"}
    for words in ("签名密钥 (signing keys)", "签名密钥 (kid)", "状态 (status)", "正在签名 (active)",
                  "已签名树头 (heads_signed)"):
        assert words in text, words


def test_sources_list(home, capsys):
    text, rows = _both(capsys, "sources", "list")
    assert rows and {r["state"] for r in rows} == {"ok"} and set(rows[0]) >= {"source", "dataset", "state"}
    for words in ("目录中的登记", "(registrations in the catalogue", "数据源 (source)", "状态 (state)", "已加载 (ok)"):
        assert words in text, words


def test_help_and_errors_are_chinese_first(home, capsys):
    with pytest.raises(SystemExit):
        cli(["runs", "--help"])
    out = capsys.readouterr().out
    assert "最近的流水线运行 (recent pipeline runs)" in out and "机器可读输出 (machine-readable output)" in out
    assert cli(["status", "--at", "yesterday"]) == 2
    assert "不是 ISO 时间 (not an ISO time)" in capsys.readouterr().err
