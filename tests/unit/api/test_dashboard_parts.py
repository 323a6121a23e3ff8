"""The dashboard's parts without a browser: session tokens, the Data Docs path guard, the SVG
charts, and that the pages stay out of the OpenAPI schema."""
from __future__ import annotations

import re

import pytest

from api.dashboard import charts, session
from api.dashboard.docs import docs_file

SECRET = b"k" * 32


def test_session_tokens_are_signed_scoped_and_expire():
    value = session.make(SECRET, "0123456789abcdef", now=1_000)
    assert session.read(SECRET, value, now=1_001) == "0123456789abcdef"
    assert session.read(SECRET, value, now=1_000 + session.TTL + 1) is None        # expired
    assert session.read(b"x" * 32, value, now=1_001) is None                     # another secret
    assert session.read(SECRET, value, scope="docs:1", now=1_001) is None        # not a docs token
    payload, mac = value.split(".")
    assert session.read(SECRET, f"{payload}.{mac[:-1]}{'0' if mac[-1] != '0' else '1'}", now=1_001) is None
    forged = session.make(SECRET, "0123456789abcdef", "docs:1", now=1_000)
    assert session.read(SECRET, forged, "docs:2", now=1_001) is None             # one run only
    assert session.read(SECRET, forged, "docs:1", now=1_001) == "0123456789abcdef"
    for junk in (None, "", "a.b.c", "no-dot", "x" * 400, "!!!.00"):
        assert session.read(SECRET, junk) is None


def test_dashboard_secret_refuses_short_values(monkeypatch):
    from base.errors import ConfigError

    with pytest.raises(ConfigError, match="32 random characters"):
        session.load_secret("changeme")
    assert session.load_secret(None) != session.load_secret(None)                       # random per process


def test_docs_file_stays_inside_the_runs_docs(tmp_path):
    from base.storage import Store

    store, staging = Store.local(tmp_path), tmp_path / "staging"
    docs = staging / "src" / "r1" / "data_docs"
    (docs / "validations").mkdir(parents=True)
    (docs / "index.html").write_text("<html>")
    (docs / "validations" / "a.html").write_text("<html>")
    (staging / "src" / "r1" / "extracted.parquet").write_bytes(b"PAR1")
    (tmp_path / "secret.txt").write_text("no")
    (docs / "link.html").symlink_to(tmp_path / "secret.txt")
    index = "staging/src/r1/data_docs/index.html"
    assert docs_file(store, index, "") == index
    assert docs_file(store, index, "validations/a.html") == "staging/src/r1/data_docs/validations/a.html"
    for bad in ("../extracted.parquet", "../../../../secret.txt", "/etc/passwd", "link.html",
                "validations", "missing.html"):
        assert docs_file(store, index, bad) is None, bad
    assert docs_file(store, None, "index.html") is None
    outside = tmp_path / "elsewhere" / "index.html"                  # a docs key outside staging/
    outside.parent.mkdir()
    outside.write_text("<html>")
    assert docs_file(store, "elsewhere/index.html", "index.html") is None
    assert docs_file(store, "staging/../elsewhere/index.html", "index.html") is None


def test_trend_chart_has_one_point_per_run():
    svg = str(charts.trend([{"run_id": 1, "at": "2026-11-01T00:00:00", "pass_share": 0.95},
                            {"run_id": 2, "at": "2026-11-02T00:00:00", "pass_share": 0.5},
                            {"run_id": 3, "at": "2026-11-03T00:00:00", "pass_share": None}]))
    points = re.findall(r'<circle class="point( low)?" cx="([\d.]+)" cy="([\d.]+)" r="4" data-run="(\d+)" '
                        r'data-share="([\d.]+)"', svg)
    assert [(p[3], p[4], bool(p[0])) for p in points] == [("1", "0.9500", False), ("2", "0.5000", True),
                                                          ("3", "0.0000", True)]
    xs, ys = [float(p[1]) for p in points], [float(p[2]) for p in points]
    assert xs == sorted(xs) and ys[0] < ys[1] < ys[2]               # higher share, higher point
    assert "<polyline" in svg and "95.0%" in svg
    assert "尚无带计数的运行" in str(charts.trend([])) and "No runs" in str(charts.trend([], lang="en"))


def test_bar_chart_scales_and_escapes():
    svg = str(charts.bars([{"department": "a", "department_name": "<b>局</b>", "x": 0.5, "y": None},
                           {"department": "b", "department_name": "B", "x": 1.0, "y": 0.25}],
                          "department_name", [("x", "on time"), ("y", "quality")]))
    widths = {(d, s): float(w) for w, d, s in re.findall(
        r'width="([\d.]+)" height="\d+" data-department="(\w)" data-series="(\w)"', svg)}
    assert len(widths) == 4
    assert widths[("b", "x")] == 2 * widths[("a", "x")] and widths[("a", "y")] == 0
    assert widths[("b", "y")] == pytest.approx(widths[("b", "x")] / 4)
    assert "<b>" not in svg and "&lt;b&gt;局&lt;/b&gt;" in svg


def test_dashboard_is_hidden_from_the_openapi_schema(home):
    from api.app import create_app

    paths = create_app().openapi()["paths"]
    assert paths and not [p for p in paths if p.startswith("/dashboard")]


def test_login_redirects_only_inside_the_dashboard():
    from api.dashboard.auth import _safe_next

    assert _safe_next("/dashboard/audit?holder=X") == "/dashboard/audit?holder=X"
    for bad in (None, "", "https://evil.example/", "//evil.example/dashboard/", "/v1/datasets",
                "/dashboard/logout", "/dashboard/login?next=x", "/dashboard/\\evil"):
        assert _safe_next(bad) == "/dashboard/", bad
