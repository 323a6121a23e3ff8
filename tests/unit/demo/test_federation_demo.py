"""`exchange demo --federation` exits non-zero naming the step whose check did not hold, and
runs no step after it (the exchanges' set-up is replaced here; the whole demo runs in
tests/e2e/test_demo_federation.py)."""
from __future__ import annotations

import json

import pytest

import demo.federation as fed

pytestmark = pytest.mark.federation


def test_a_failed_check_names_its_step_and_stops(monkeypatch, tmp_path, capsys):
    ran = []
    monkeypatch.setattr(fed, "_setup_district", lambda ex, d: None)
    monkeypatch.setattr(fed, "_setup_city", lambda ex, d: None)
    monkeypatch.setattr(fed, "step1", lambda d: ran.append(1) or {"datasets": {}})

    def refused(d):
        ran.append(2)
        fed.expect(False, "pinned keys []")
    monkeypatch.setattr(fed, "step2", refused)
    monkeypatch.setattr(fed, "step3", lambda d, scratch: ran.append(3) or {})
    (tmp_path / "fed" / "stale").mkdir(parents=True)
    assert fed.run_federation_demo(as_json=True, folder=tmp_path / "fed") == 1
    out = capsys.readouterr()
    s = json.loads(out.out)
    assert ran == [1, 2] and s["ok"] is False and s["failed"] == 2
    assert s["steps"][-1]["error"] == "StepFailed: pinned keys []"
    assert "第 2 步未通过 (step 2 failed)" in out.err and not (tmp_path / "fed" / "stale").exists()


def test_a_failed_set_up_is_step_0(monkeypatch, tmp_path, capsys):
    def down(ex, d):
        raise RuntimeError("[district] exchange serve exited 1")
    monkeypatch.setattr(fed, "_setup_district", down)
    monkeypatch.setattr(fed, "_setup_city", lambda ex, d: None)
    assert fed.run_federation_demo(folder=tmp_path / "fed") == 1
    out = capsys.readouterr().out
    assert "第 0 步未通过 (step 0 failed)：准备两个平台 (setting up both exchanges)：RuntimeError" in out
