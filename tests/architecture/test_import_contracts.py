"""The import-linter contracts hold on this tree, and the custom private-imports contract
fails on a package that breaks it (so it can fail)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_contracts_hold_on_the_tree() -> None:
    res = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "lint_imports.py")],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "4 kept, 0 broken" in res.stdout


def _package(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        f = root / rel
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(textwrap.dedent(text), encoding="utf-8")


def test_private_imports_across_packages_break_the_contract(tmp_path: Path) -> None:
    _package(
        tmp_path,
        {
            "taxrisk_fake/__init__.py": "",
            "taxrisk_fake/a/__init__.py": "",
            "taxrisk_fake/a/_hidden.py": "VALUE = 1\n",
            "taxrisk_fake/a/mod.py": "from ._hidden import VALUE\n_helper = 2\n",  # same package: fine
            "taxrisk_fake/b/__init__.py": "",
            "taxrisk_fake/b/user.py": (
                "from taxrisk_fake.a.mod import _helper\nfrom taxrisk_fake.a import _hidden\n"
            ),
        },
    )
    (tmp_path / ".importlinter").write_text(
        textwrap.dedent(
            """\
            [importlinter]
            root_package = taxrisk_fake
            contract_types =
                no_private_imports: scripts.import_contracts.NoPrivateImportsContract

            [importlinter:contract:private]
            name = private
            type = no_private_imports
            packages =
                taxrisk_fake.a
                taxrisk_fake.b
            """
        ),
        encoding="utf-8",
    )
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    res = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode == 1, res.stdout + res.stderr
    out = " ".join(res.stdout.split())
    assert "imports private '_helper' from taxrisk_fake.a.mod" in out
    assert "imports private '_hidden' from taxrisk_fake.a" in out
    assert out.count("imports private") == 2  # a.mod's own import of a._hidden is fine
