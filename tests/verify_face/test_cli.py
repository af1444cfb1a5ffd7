"""``tack faces``: keygen, enroll, list and evaluate, as a person at a terminal runs them."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app
from tests.verify_face.conftest import FACES, MULTI, PUTIN

runner = CliRunner()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TACK_DATA_DIR", str(tmp_path))
    db = sqlite3.connect(tmp_path / "tack.db")
    db.close()
    return tmp_path


def test_enroll_without_a_key_says_how_to_create_one(env: Path) -> None:
    result = runner.invoke(app, ["faces", "enroll", "p-1", str(PUTIN[0]), "--force"])
    assert result.exit_code == 1
    assert "tack faces keygen" in result.output


def test_keygen_enroll_and_list(env: Path) -> None:
    assert runner.invoke(app, ["faces", "keygen"]).exit_code == 0
    assert (env / "face.key").is_file()
    again = runner.invoke(app, ["faces", "keygen"])
    assert again.exit_code == 1
    assert "already exists" in again.output

    refused = runner.invoke(app, ["faces", "enroll", "p-nobody", str(PUTIN[0])])
    assert refused.exit_code == 1
    assert "not in the roster" in refused.output

    ok = runner.invoke(app, ["faces", "enroll", "p-putin", str(PUTIN[0]), str(MULTI), "--force"])
    assert ok.exit_code == 0, ok.output
    assert "enrolled 1 template(s) for p-putin" in ok.output
    assert "face_multiple" in ok.output

    listed = runner.invoke(app, ["faces", "list"])
    assert "p-putin" in listed.output


def test_evaluate_writes_report_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = runner.invoke(app, ["faces", "evaluate", str(FACES), "--out", str(out)])
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["encoded"] == 7
    assert report["pairs_used"] == 21  # no pairs.csv: every pair of the manifest
    assert report["at_threshold"]["accuracy"] == 1.0  # clear cases only, chosen for that
    for png in ("roc.png", "distances.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "operating threshold" in result.output


def test_evaluate_names_a_missing_folder(tmp_path: Path) -> None:
    result = runner.invoke(app, ["faces", "evaluate", str(tmp_path / "absent")])
    assert result.exit_code == 1
    assert str(tmp_path / "absent") in result.output
