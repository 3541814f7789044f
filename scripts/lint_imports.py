"""Run import-linter's contracts (``[tool.importlinter]`` in pyproject.toml) on this tree.

The design card's folders (``features/``, ``training/``, ...) are installed as subpackages of
``taxrisk`` through setuptools' ``package-dir``, which import-linter's graph builder does not
follow: it walks the folder of the root package. So this script lays out the package as
installed, a temporary ``taxrisk/`` of symlinks built from the same ``package-dir`` mapping,
puts it first on ``sys.path`` and runs ``lint-imports`` on it. Exit code: import-linter's.

    .venv/bin/python scripts/lint_imports.py [lint-imports options]
"""

from __future__ import annotations

import os
import sys
import tempfile
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_tree(dest: Path) -> Path:
    """``dest/taxrisk`` as installed: the ``taxrisk/`` folder's entries plus each mapped
    subpackage folder, all as symlinks into the work tree."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    mapping: dict[str, str] = cfg["tool"]["setuptools"]["package-dir"]
    pkg = dest / "taxrisk"
    pkg.mkdir()
    for entry in (ROOT / mapping["taxrisk"]).iterdir():
        if entry.name != "__pycache__":
            (pkg / entry.name).symlink_to(entry)
    for name, folder in mapping.items():
        parts = name.split(".")
        if len(parts) == 2:
            (pkg / parts[1]).symlink_to(ROOT / folder, target_is_directory=True)
    return dest


def main(argv: list[str]) -> int:
    from importlinter.cli import lint_imports

    with tempfile.TemporaryDirectory(prefix="taxrisk-importlinter-") as tmp:
        tree = build_tree(Path(tmp))
        sys.path.insert(0, str(tree))
        sys.path.insert(1, str(ROOT))  # the custom contract types in scripts/
        os.chdir(tree)  # lint-imports puts the working directory first on sys.path
        return lint_imports(
            config_filename=str(ROOT / "pyproject.toml"),
            no_cache=True,
            verbose="--verbose" in argv,
        )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
