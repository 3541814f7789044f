"""Every CLI command is documented in the README, and every documented command exists."""

from __future__ import annotations

import re
from pathlib import Path

import typer.main

from taxrisk.cli import app

README = Path(__file__).resolve().parents[2] / "README.md"


def _commands() -> set[str]:
    group = typer.main.get_group(app)
    return set(group.commands)


def test_every_command_is_in_the_readme() -> None:
    text = README.read_text(encoding="utf-8")
    missing = [c for c in sorted(_commands()) if f"`taxrisk {c}" not in text]
    assert not missing, f"commands missing from README.md: {missing}"


def test_every_readme_command_exists() -> None:
    text = README.read_text(encoding="utf-8")
    table = re.findall(r"^\| `taxrisk ([a-z-]+)", text, flags=re.MULTILINE)
    assert table, "README has no command table"
    assert set(table) == _commands()


def test_every_command_has_help() -> None:
    group = typer.main.get_group(app)
    for name, cmd in group.commands.items():
        assert cmd.help and len(cmd.help) > 20, f"taxrisk {name} has no real --help text"
