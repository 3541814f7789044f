"""The model against the old rules, random and the oracle on several generated worlds.

Usage::

    .venv/bin/python -m taxrisk.experiments.worlds [--taxpayers 20000] [--trials N]
        [--out DIR] [--worlds standard shifted drift lean] [--config TOML]

For each world (a style and a seed, :data:`WORLDS`): generate it into ``OUT/NAME`` (reused
when a complete one is already there, same arguments), then run the product as a user would,
each command a subprocess with its own workspace ``OUT/ws-NAME`` (wiped first, so every run
trains a first champion): ``taxrisk validate``, ``taxrisk train`` (timed; ``--trials`` only
when given, else the training config's default; ``--config`` passed on when given),
``taxrisk score --out`` at the world's as-of
date, and ``taxrisk evaluate`` of that ranking and of the old rules' ranking (the count of
fired classic indicators, :func:`taxrisk.training.baselines.old_rules_scores`, on the
project's feature matrix). Prints one table: capture@K and hit rate@K of the model, the old
rules, a random ranking (expected) and the oracle, the model's ratio to the old rules, and
the training wall time; writes it with the raw figures to ``OUT/worlds.json``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = ["WORLDS", "World", "main", "run_world"]

AS_OF = dt.date(2025, 12, 31)


@dataclass(frozen=True)
class World:
    """One measured world: a generator style, a seed and optional tables left out."""

    name: str
    style: str
    seed: int
    drop: tuple[str, ...] = ()


#: The four worlds of the issue's measure: two stable styles, one drifting, one lean.
WORLDS: tuple[World, ...] = (
    World("standard", "standard", 101),
    World("shifted", "shifted", 202),
    World("drift", "drift", 303),
    World("lean", "shifted", 404, ("operations",)),
)


def _cli() -> list[str]:
    exe = Path(sys.executable).with_name("taxrisk")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "taxrisk.cli"]


def _run(args: list[str], env: dict[str, str], log: Path) -> float:
    """Run one ``taxrisk`` command (output appended to ``log``); its wall time in seconds."""
    t0 = time.perf_counter()
    with log.open("a", encoding="utf-8") as fh:
        fh.write(f"$ taxrisk {' '.join(args)}\n")
        fh.flush()
        res = subprocess.run([*_cli(), *args], env=env, stdout=fh, stderr=fh, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"taxrisk {args[0]} failed (exit {res.returncode}); see {log}")
    return time.perf_counter() - t0


def _generate(world: World, folder: Path, taxpayers: int) -> None:
    from taxrisk.experiments.demo import generate

    marker = folder / "world.json"
    spec = {"style": world.style, "seed": world.seed, "drop": list(world.drop), "n": taxpayers}
    if marker.exists() and json.loads(marker.read_text()).get("spec") == spec:
        return
    summary = generate(
        folder, taxpayers=taxpayers, seed=world.seed, style=world.style, drop=world.drop
    )
    marker.write_text(json.dumps({"spec": spec, "summary": summary}, indent=2, default=str))


def _old_rules_ranking(folder: Path, as_of: dt.date) -> pd.DataFrame:
    from taxrisk.features.loading import load_folder
    from taxrisk.features.matrix import build_matrix
    from taxrisk.training.baselines import old_rules_scores

    loaded = load_folder(folder, as_of=as_of)
    scores = old_rules_scores(build_matrix(loaded.tables, as_of))
    order = scores.sort_values(ascending=False, kind="stable")
    return pd.DataFrame(
        {"taxpayer_id": order.index.astype(str), "rank": np.arange(1, len(order) + 1)}
    )


def run_world(
    world: World, out: Path, taxpayers: int, trials: int | None, config: Path | None = None
) -> dict:
    """Generate (or reuse), validate, train, score and evaluate one world; its figures."""
    folder = out / world.name
    ws = out / f"ws-{world.name}"
    shutil.rmtree(ws, ignore_errors=True)
    ws.mkdir(parents=True)
    log = out / f"{world.name}.log"
    log.write_text("", encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env |= {"TAXRISK_WORKSPACE": str(ws), "MLFLOW_DISABLE_TELEMETRY": "true"}
    as_of = AS_OF.isoformat()
    t0 = time.perf_counter()
    _generate(world, folder, taxpayers)
    gen_s = time.perf_counter() - t0
    _run(["validate", str(folder), "--as-of", as_of], env, log)
    train_args = ["train", str(folder), "--as-of", as_of]
    if trials is not None:
        train_args += ["--trials", str(trials)]
    if config is not None:
        train_args += ["--config", str(config)]
    train_s = _run(train_args, env, log)
    ranking = ws / "ranking.csv"
    _run(["score", str(folder), "--as-of", as_of, "--out", str(ranking)], env, log)
    rules_csv = ws / "old_rules.csv"
    _old_rules_ranking(folder, AS_OF).to_csv(rules_csv, index=False)
    metrics = {}
    for name, path in (("model", ranking), ("old_rules", rules_csv)):
        js = ws / f"eval-{name}.json"
        _run(["evaluate", str(folder), "--as-of", as_of, "--ranking", str(path), "--json", str(js)],
             env, log)  # fmt: skip
        metrics[name] = json.loads(js.read_text())
    m, r = metrics["model"], metrics["old_rules"]
    return {
        "world": world.name,
        "style": world.style,
        "seed": world.seed,
        "drop": list(world.drop),
        "n": m["n"],
        "k": m["k"],
        "model_capture": m["capture_at_k"],
        "model_hit": m["hit_rate_at_k"],
        "rules_capture": r["capture_at_k"],
        "rules_hit": r["hit_rate_at_k"],
        "random_capture": m["random_capture_at_k"],
        "random_hit": m["random_hit_rate_at_k"],
        "oracle_capture": m["oracle_capture_at_k"],
        "oracle_hit": m["oracle_hit_rate_at_k"],
        "model_vs_rules": m["capture_at_k"] / r["capture_at_k"] if r["capture_at_k"] else None,
        "train_s": round(train_s, 1),
        "generate_s": round(gen_s, 1),
    }


def _table(rows: list[dict]) -> str:
    head = (f"{'world':<10}{'style':<10}{'seed':>5}{'N':>8}{'K':>5} | {'model':>13} | "
            f"{'old rules':>13} | {'random':>13} | {'oracle':>13} | {'x rules':>7} | {'train s':>8}")  # fmt: skip
    sub = f"{'':<38} | {'cap@K  hit@K':>13} | {'cap@K  hit@K':>13} | {'cap@K  hit@K':>13} | {'cap@K  hit@K':>13} |"
    lines = [head, sub, "-" * len(head)]
    for r in rows:
        if "error" in r:
            lines.append(f"{r['world']:<10}{r['style']:<10}{r['seed']:>5}  FAILED: {r['error']}")
            continue
        ratio = f"{r['model_vs_rules']:.2f}" if r["model_vs_rules"] else "-"
        cells = [
            f"{r[f'{k}_capture']:.3f}  {r[f'{k}_hit']:.3f}"
            for k in ("model", "rules", "random", "oracle")
        ]
        lines.append(
            f"{r['world']:<10}{r['style']:<10}{r['seed']:>5}{r['n']:>8,}{r['k']:>5} | "
            + " | ".join(f"{c:>13}" for c in cells)
            + f" | {ratio:>7} | {r['train_s']:>8.1f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--taxpayers", type=int, default=20_000)
    ap.add_argument("--trials", type=int, help="Optuna trials (default: the training config's)")
    ap.add_argument("--out", type=Path, default=Path("/tmp/taxrisk-worlds"))
    ap.add_argument("--worlds", nargs="+", choices=[w.name for w in WORLDS], help="a subset")
    ap.add_argument(
        "--config", type=Path, help="a TOML overriding training/config.toml (taxrisk train)"
    )
    args = ap.parse_args(argv)
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    chosen = [w for w in WORLDS if args.worlds is None or w.name in args.worlds]
    rows: list[dict] = []
    for world in chosen:
        print(f"world {world.name} (style {world.style}, seed {world.seed}) ...", flush=True)
        try:
            config = args.config.resolve() if args.config else None
            rows.append(run_world(world, out, args.taxpayers, args.trials, config))
        except RuntimeError as exc:
            rows.append({"world": world.name, "style": world.style, "seed": world.seed,
                         "error": str(exc)})  # fmt: skip
        print(_table(rows[-1:]).splitlines()[-1], flush=True)
    text = _table(rows)
    trials = args.trials if args.trials is not None else "config default"
    cfg_note = f", training config: {args.config}" if args.config else ""
    print(f"\n{args.taxpayers:,} taxpayers x 36 months, as of {AS_OF}, trials: {trials}{cfg_note}")
    print(text)
    (out / "worlds.json").write_text(json.dumps(rows, indent=2), encoding="utf-8")
    return 0 if all("error" not in r for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
