"""A custom import-linter contract: no private names or modules imported across packages.

``packages``: the packages that keep their privates to themselves. A module of one of them
must not import, from a module of *another* package (or from a top-level ``taxrisk`` module),
a name that starts with one underscore, nor a module whose path has a part that starts with
one (``taxrisk.features.indicators._base``). Within a package, privates are shared freely.
Import-linter's graph records modules, not names, so each module's source is read (``ast``).
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass

import grimp
from importlinter import Contract, ContractCheck, fields, output

__all__ = ["NoPrivateImportsContract"]


@dataclass(frozen=True)
class _Violation:
    importer: str
    line: int
    imported: str
    name: str


def _private(part: str) -> bool:
    return part.startswith("_") and not part.startswith("__")


def _owner(module: str, packages: list[str]) -> str:
    for p in packages:
        if module == p or module.startswith(p + "."):
            return p
    return module.rsplit(".", 1)[0] if "." in module else module


class NoPrivateImportsContract(Contract):
    type_name = "no_private_imports"

    packages = fields.ListField(subfield=fields.StringField())

    def check(self, graph: grimp.ImportGraph, verbose: bool) -> ContractCheck:
        packages: list[str] = list(self.packages)  # type: ignore[call-overload]
        found: list[_Violation] = []
        for module in sorted(graph.modules):
            home = _owner(module, packages)
            if home not in packages:
                continue
            spec = importlib.util.find_spec(module)
            if spec is None or not spec.origin or not spec.origin.endswith(".py"):
                continue
            is_pkg = spec.submodule_search_locations is not None
            with open(spec.origin, encoding="utf-8") as fh:
                tree = ast.parse(fh.read(), filename=spec.origin)
            for node in ast.walk(tree):
                for imported, names in _imports(node, module, is_pkg):
                    if not imported.startswith("taxrisk") or _owner(imported, packages) == home:
                        continue
                    bad = [p for p in imported.split(".") if _private(p)]
                    bad += [n for n in names if _private(n)]
                    for name in bad:
                        found.append(_Violation(module, getattr(node, "lineno", 0), imported, name))
        return ContractCheck(kept=not found, metadata={"violations": found})

    def render_broken_contract(self, check: ContractCheck) -> None:
        for v in check.metadata["violations"]:
            output.print_error(
                f"{v.importer}:{v.line} imports private {v.name!r} from {v.imported}",
                bold=False,
            )
            output.new_line()


def _imports(node: ast.AST, module: str, is_pkg: bool) -> list[tuple[str, list[str]]]:
    if isinstance(node, ast.Import):
        return [(a.name, []) for a in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    if node.level:
        base = module.split(".")
        base = base if is_pkg else base[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join([*base, node.module] if node.module else base)
    else:
        target = node.module or ""
    return [(target, [a.name for a in node.names])]
