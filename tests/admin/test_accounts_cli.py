"""``tack accounts`` on a real store file: the first admin, password changes, roles, disabling,
each audited as the Unix user; passwords never taken from arguments, never stored in clear."""

from __future__ import annotations

import getpass
import sqlite3
from pathlib import Path

import pytest
from typer.testing import CliRunner

from gateway.cli import app

PASSWORD = "a long pass phrase"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tack.toml"
    path.write_text(f'site = "hq"\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    return path


def tack(config: Path, *args: str, stdin: str | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(app, [*args, "--config", str(config)], input=stdin)
    return result.exit_code, result.output


def rows(config: Path, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(config.parent / "data" / "tack.db") as db:
        return list(db.execute(sql))


def test_first_admin_from_stdin_is_hashed_with_argon2_and_audited(config: Path) -> None:
    code, out = tack(
        config,
        "accounts",
        "add",
        "li.wei",
        "--role",
        "admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    assert code == 0, out
    [(stored,)] = rows(config, "SELECT password_hash FROM accounts WHERE username = 'li.wei'")
    assert str(stored).startswith("$argon2id$")
    assert PASSWORD not in str(stored)
    assert rows(config, "SELECT actor, action, target FROM audit_log") == [
        (f"cli:{getpass.getuser()}", "account.create", "li.wei")
    ]
    code, out = tack(config, "accounts", "list")
    assert "li.wei" in out
    assert "admin" in out


def test_prompt_asks_twice_and_refuses_a_mismatch(config: Path) -> None:
    code, out = tack(config, "accounts", "add", "fred", stdin=f"{PASSWORD}\nsomething else\n")
    assert code != 0
    assert "do not match" in out
    assert PASSWORD not in out
    code, out = tack(config, "accounts", "add", "fred", stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert code == 0, out
    assert rows(config, "SELECT role FROM accounts") == [("viewer",)]


def test_bad_input_is_explained_without_a_traceback(config: Path) -> None:
    for args, stdin, expected in [
        (("add", "Bad Name"), PASSWORD, "invalid username"),
        (("add", "tom", "--role", "boss"), PASSWORD, "admin, facilities, viewer"),
        (("add", "tom"), "short", "at least 10"),
        (("passwd", "nobody"), PASSWORD, "no account 'nobody'"),
    ]:
        code, out = tack(config, "accounts", *args, "--password-stdin", stdin=stdin + "\n")
        assert code != 0
        assert expected in out
        assert "Traceback" not in out


def test_role_passwd_disable_are_audited_and_the_last_admin_is_kept(config: Path) -> None:
    tack(
        config,
        "accounts",
        "add",
        "alice",
        "--role",
        "admin",
        "--password-stdin",
        stdin=PASSWORD + "\n",
    )
    tack(config, "accounts", "add", "fred", "--password-stdin", stdin=PASSWORD + "\n")
    code, out = tack(config, "accounts", "disable", "alice")
    assert code == 1
    assert "last enabled admin" in out
    assert tack(config, "accounts", "role", "fred", "admin")[0] == 0
    assert tack(config, "accounts", "disable", "alice")[0] == 0
    assert (
        tack(
            config, "accounts", "passwd", "fred", "--password-stdin", stdin="another long phrase\n"
        )[0]
        == 0
    )
    assert tack(config, "accounts", "disable", "alice", "--enable")[0] == 0
    actions = [str(r[0]) for r in rows(config, "SELECT action FROM audit_log ORDER BY id")]
    assert actions == [
        "account.create",
        "account.create",
        "account.role",
        "account.disable",
        "account.passwd",
        "account.enable",
    ]
    assert rows(config, "SELECT username, role, disabled FROM accounts ORDER BY username") == [
        ("alice", "admin", 0),
        ("fred", "admin", 0),
    ]
