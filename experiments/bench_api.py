"""Load-test the case list against a bare FastAPI endpoint, on the same uvicorn settings.

    .venv/bin/python experiments/bench_api.py [--duration 30] [--connections 64]
        [--cases-per-run 2000] [--runs 3] [--units 150] [--unit UNIT] [--database-url URL]
        [--client wrk|httpx] [--json OUT]

1. Seeds a case store as a 100,000-taxpayer city would have it after ``--runs`` monthly
   scoring runs: ``--units`` units (a city bureau, 15 counties, branches), ``--cases-per-run``
   cases per run (older runs' cases closed or superseded, the current run's open), 8 to 12
   indicator rows per case, one action-log entry per case and per change, two users. SQLite in
   a temporary workspace unless ``--database-url`` names another store (it must be empty).
2. Starts the real server in a subprocess (``taxrisk.serving.api.main.create_app`` under
   uvicorn: one worker, loopback, access log off) and loads
   ``GET /api/v1/units/{unit}/cases?limit=50`` as the unit's selector (default unit: the
   county with the most cases, its branches included).
3. Starts a bare FastAPI app under the same uvicorn settings whose one endpoint returns a
   constant JSON document of the same size (the case list's own response body, parsed once,
   returned as a dict through FastAPI's normal serialization), and loads it the same way.
4. Prints requests/s, p50 and p99 latency of both and the ratio (target: the case list at
   least 50% of the bare endpoint's requests/s, and its p99 at most 50 ms).

Load: ``wrk`` (one thread, ``--connections`` keep-alive connections, ``--duration`` seconds,
after a 3 s warm-up) when installed, else an asyncio httpx client with the same shape. Both
run on loopback only; the client shares the machine's cores with the server.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve()


# --- the store -----------------------------------------------------------------------------


def _units(n: int) -> list[dict[str, Any]]:
    """A city bureau, 15 counties, and branches under the counties (n units in all)."""
    counties = min(15, max(1, n - 1))
    rows = [{"unit_id": "C00", "parent_id": None, "level": "city", "name": "市局", "capacity": 60}]
    for c in range(1, counties + 1):
        rows.append(
            {
                "unit_id": f"C{c:02d}",
                "parent_id": "C00",
                "level": "county",
                "name": f"第{c}区税务局",
                "capacity": 20,
            }
        )
    for b in range(n - 1 - counties):
        county = b % counties + 1
        rows.append(
            {
                "unit_id": f"C{county:02d}B{b // counties + 1:02d}",
                "parent_id": f"C{county:02d}",
                "level": "branch",
                "name": f"第{county}区税务局第{b // counties + 1}税务所",
                "capacity": 10,
            }
        )
    return rows


def seed_world(
    session: Any,
    *,
    units: int = 150,
    cases_per_run: int = 2000,
    runs: int = 3,
    taxpayers: int = 100_000,
    seed: int = 0,
) -> dict[str, Any]:
    """Write the benchmark's store in ``session`` (committed). Returns ids and tokens."""
    from sqlalchemy import insert
    from taxrisk.features.catalog import CATALOG
    from taxrisk.serving.config import load_config
    from taxrisk.serving.store import action_log, users
    from taxrisk.serving.store.action_log import SYSTEM
    from taxrisk.serving.store.models import Case, CaseIndicator, RunUnit, ScoringRun, Unit

    rng = random.Random(seed)
    cfg = load_config()
    unit_rows = _units(units)
    session.execute(insert(Unit), unit_rows)
    weights = [u["capacity"] for u in unit_rows]
    catalog = sorted(CATALOG)
    industries = ["1311", "0610", "3031", "1512", "1713", "7010", "5251", "5265", "5261", "4411"]
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    first_as_of = dt.date(2026, 12, 1) - dt.timedelta(days=30 * (runs - 1))
    counts: dict[str, int] = {}
    for r in range(runs):
        current = r == runs - 1
        as_of = first_as_of + dt.timedelta(days=30 * r)
        run_id = f"run-{as_of:%Y%m%d}-{r + 1:04d}"
        published = now - dt.timedelta(days=30 * (runs - 1 - r))
        session.add(
            ScoringRun(
                run_id=run_id,
                as_of=as_of,
                model_uri="models:/taxrisk/7",
                model_version="7",
                data_dir="/data/city",
                data_fingerprint=f"{r:064x}",
                config_version=cfg.version,
                started_at=published - dt.timedelta(minutes=4),
                published_at=published,
                created_by="system",
                counts={"scored": taxpayers, "cases": cases_per_run},
                timings={"load": 9.1, "features": 38.0, "predict": 0.6, "write": 2.2},
                monitoring={"psi_max": 0.03},
                artifacts={},
            )
        )
        session.flush()
        action_log.append(session, SYSTEM, "publish_run", run_id=run_id)
        chosen = rng.sample(range(1, taxpayers + 1), cases_per_run)
        case_rows, item_rows = [], []
        per_unit: dict[str, list[float]] = {}
        for rank, tp_n in enumerate(sorted(chosen), start=1):
            unit = rng.choices(unit_rows, weights)[0]["unit_id"]
            ey = round(2_000_000 * 0.997**rank * rng.uniform(0.8, 1.2), 2)
            p = round(min(0.95, max(0.05, 0.9 - rank / cases_per_run * 0.8)), 4)
            level = "high" if rank <= 40 else "medium" if rank <= 400 else "low"
            status = (
                rng.choice(["new", "new", "new", "assigned", "in_progress", "review"])
                if current
                else rng.choice(["closed", "closed", "superseded"])
            )
            tp = f"TP{tp_n:06d}"
            case_id = f"C-{as_of:%Y%m%d}-{tp}"
            case_rows.append(
                {
                    "case_id": case_id,
                    "run_id": run_id,
                    "as_of": as_of,
                    "model_version": "7",
                    "taxpayer_id": tp,
                    "taxpayer_name": f"纳税人{tp_n}有限公司",
                    "industry": rng.choice(industries),
                    "taxpayer_type": "general",
                    "managing_unit_id": unit,
                    "unit_id": unit,
                    "route_reason": "managing",
                    "selection": "model" if rng.random() > 0.05 else "exploration",
                    "selection_probability": None,
                    "rank": rank,
                    "risk_score": p,
                    "expected_amount": round(ey / p, 2),
                    "expected_yield": ey,
                    "risk_level": level,
                    "recommended_measure": cfg.measure_for(level, p, ey),
                    "base_yield": 12_500.0,
                    "status": status,
                    "officer": "王强" if status in ("assigned", "in_progress", "review") else None,
                    "due_on": as_of + dt.timedelta(days=60),
                    "created_at": published,
                    "updated_at": published,
                    "closed_at": published if status == "closed" else None,
                }
            )
            per_unit.setdefault(unit, []).append(ey)
            items = rng.sample(catalog, rng.randint(8, min(12, len(catalog))))
            fired = rng.randint(2, 5)
            contributions = sorted(
                (round(ey * rng.uniform(0.02, 0.4), 2) for _ in items), reverse=True
            )
            for pos, (item, yuan) in enumerate(zip(items, contributions, strict=True)):
                item_rows.append(
                    {
                        "case_id": case_id,
                        "item": item,
                        "position": pos,
                        "kind": "indicator",
                        "fired": pos < fired,
                        "value": round(rng.uniform(0, 3), 4),
                        "percentile": round(rng.uniform(0.5, 1.0), 4),
                        "contribution": yuan,
                    }
                )
        session.execute(insert(Case), case_rows)
        session.execute(insert(CaseIndicator), item_rows)
        session.execute(
            insert(RunUnit),
            [
                {
                    "run_id": run_id,
                    "unit_id": u["unit_id"],
                    "capacity": u["capacity"],
                    "assigned": len(per_unit.get(u["unit_id"], [])),
                    "exploration": 0,
                    "overflow": 0,
                    "expected_yield": round(sum(per_unit.get(u["unit_id"], [])), 2),
                    "shadow_price": round(min(per_unit.get(u["unit_id"], [0.0])), 2),
                }
                for u in unit_rows
            ],
        )
        for row in case_rows:
            action_log.append(session, SYSTEM, "dispatch", case_id=row["case_id"], run_id=run_id)
        counts[run_id] = len(case_rows)
    # the unit a selector would look at: the county with the most cases of the current run
    current_units = [row["unit_id"] for row in case_rows]
    county_of = {
        u["unit_id"]: (u["parent_id"] if u["level"] == "branch" else u["unit_id"])
        for u in unit_rows
    }
    tally: dict[str, int] = {}
    for u in current_units:
        if county_of[u] != "C00":
            tally[county_of[u]] = tally.get(county_of[u], 0) + 1
    busiest = max(tally, key=lambda k: tally[k])
    _, admin_token = users.add_user(session, "bench_admin", "admin")
    _, selector_token = users.add_user(session, "bench_selector", "selector", busiest)
    session.commit()
    return {
        "units": len(unit_rows),
        "runs": counts,
        "busiest_county": busiest,
        "tokens": {"admin": admin_token, "selector": selector_token},
    }


# --- the servers ---------------------------------------------------------------------------

UVICORN = {"host": "127.0.0.1", "workers": 1, "log_level": "warning", "access_log": False}


def _serve_api(url: str, workspace: str, port: int) -> None:
    import uvicorn
    from taxrisk.serving.api.main import create_app
    from taxrisk.serving.store.session import make_engine

    from taxrisk.settings import get_settings

    settings = get_settings(workspace=Path(workspace), database_url=url)
    app = create_app(settings, engine=make_engine(url), web=False)
    uvicorn.run(app, port=port, **UVICORN)  # type: ignore[arg-type]


def _serve_bare(payload_file: str, port: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    payload = json.loads(Path(payload_file).read_text(encoding="utf-8"))
    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict[str, Any]:
        return payload  # type: ignore[no-any-return]

    uvicorn.run(app, port=port, **UVICORN)  # type: ignore[arg-type]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """This script in a subprocess serving one app; waits until ``probe`` answers."""

    def __init__(self, args: list[str], port: int, probe: str, headers: dict[str, str]) -> None:
        self.port = port
        self.probe = f"http://127.0.0.1:{port}{probe}"
        self.headers = headers
        env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE), *args, "--port", str(port)],
            env=env,
            start_new_session=True,
        )

    def __enter__(self) -> Server:
        import httpx

        deadline = time.monotonic() + 90
        while True:
            try:
                r = httpx.get(self.probe, headers=self.headers, timeout=2)
                if r.status_code == 200:
                    return self
                raise RuntimeError(f"{self.probe}: {r.status_code} {r.text[:200]}")
            except httpx.TransportError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server for {self.probe} did not start") from None
                time.sleep(0.2)

    def __exit__(self, *exc: object) -> None:
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


# --- the load ------------------------------------------------------------------------------

_UNIT_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"cannot read a wrk latency: {text!r}")
    return float(m.group(1)) * _UNIT_MS[m.group(2)]


def load_wrk(url: str, headers: dict[str, str], connections: int, duration: int) -> dict[str, Any]:
    hdr = [a for k, v in headers.items() for a in ("-H", f"{k}: {v}")]
    base = ["wrk", "-t1", f"-c{connections}", "--latency", "--timeout", "10s", *hdr]
    subprocess.run([*base, "-d3s", url], capture_output=True, check=True, timeout=60)  # warm-up
    out = subprocess.run(
        [*base, f"-d{duration}s", url],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + 60,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", out, flags=re.MULTILINE))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    return {
        "rps": rps,
        "p50_ms": _ms(pct["50"]),
        "p99_ms": _ms(pct["99"]),
        "non_2xx": int(bad.group(1)) if bad else 0,
        "socket_errors": errors.group(0) if errors else "",
        "client": "wrk",
    }


async def _httpx_load(
    url: str, headers: dict[str, str], connections: int, duration: float
) -> dict[str, Any]:
    import httpx

    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    latencies: list[float] = []
    bad = 0
    async with httpx.AsyncClient(limits=limits, headers=headers, timeout=10) as client:

        async def worker(until: float, record: bool) -> None:
            nonlocal bad
            while time.perf_counter() < until:
                t = time.perf_counter()
                r = await client.get(url)
                if record:
                    latencies.append((time.perf_counter() - t) * 1000)
                    bad += r.status_code >= 300

        warm = time.perf_counter() + 3
        await asyncio.gather(*(worker(warm, False) for _ in range(connections)))
        start = time.perf_counter()
        await asyncio.gather(*(worker(start + duration, True) for _ in range(connections)))
        elapsed = time.perf_counter() - start
    latencies.sort()
    return {
        "rps": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2],
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))],
        "non_2xx": bad,
        "socket_errors": "",
        "client": "httpx",
    }


def load(
    client: str, url: str, headers: dict[str, str], connections: int, duration: int
) -> dict[str, Any]:
    if client == "wrk":
        return load_wrk(url, headers, connections, duration)
    return asyncio.run(_httpx_load(url, headers, connections, duration))


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--duration", type=int, default=30, help="seconds of load per endpoint")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--cases-per-run", type=int, default=2000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--units", type=int, default=150)
    ap.add_argument("--unit", help="the unit to list (default: the busiest county)")
    ap.add_argument("--database-url", help="an empty store to seed (default: SQLite in a tmp dir)")
    ap.add_argument("--client", choices=("wrk", "httpx"), default=None)
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    args = ap.parse_args(argv)

    from sqlalchemy import func, select
    from taxrisk.serving.store.models import Case, CaseIndicator
    from taxrisk.serving.store.session import make_engine, session_factory, upgrade

    client = args.client or ("wrk" if shutil.which("wrk") else "httpx")
    workspace = Path(tempfile.mkdtemp(prefix="bench_api."))
    url = args.database_url or f"sqlite:///{workspace / 'cases.db'}"
    try:
        t0 = time.perf_counter()
        engine = make_engine(url)
        upgrade(engine)
        with session_factory(engine)() as session:
            world = seed_world(
                session, units=args.units, cases_per_run=args.cases_per_run, runs=args.runs
            )
            n_cases = session.scalar(select(func.count()).select_from(Case))
            n_items = session.scalar(select(func.count()).select_from(CaseIndicator))
        engine.dispose()
        unit = args.unit or world["busiest_county"]
        token = world["tokens"]["selector" if not args.unit else "admin"]
        auth = {"Authorization": f"Bearer {token}"}
        print(
            f"seeded {world['units']} units, {len(world['runs'])} runs, {n_cases} cases, "
            f"{n_items} indicator rows in {time.perf_counter() - t0:.1f} s ({url.split(':')[0]})",
            flush=True,
        )
        path = f"/api/v1/units/{unit}/cases?limit=50"
        port = _free_port()
        results: dict[str, Any] = {}
        with Server(["serve-api", "--db", url, "--workspace", str(workspace)], port, path, auth):
            import httpx

            body = httpx.get(f"http://127.0.0.1:{port}{path}", headers=auth).content
            page = json.loads(body)
            print(
                f"{path}: {len(body):,} bytes, {len(page['items'])} of {page['total']} cases "
                f"(unit {unit} and below, as its selector)",
                flush=True,
            )
            results["case_list"] = load(
                client, f"http://127.0.0.1:{port}{path}", auth, args.connections, args.duration
            )
        payload = workspace / "payload.json"
        payload.write_bytes(body)
        port = _free_port()
        with Server(["serve-bare", "--payload", str(payload)], port, "/bare", {}):
            results["bare"] = load(
                client, f"http://127.0.0.1:{port}/bare", auth, args.connections, args.duration
            )
        ratio = results["case_list"]["rps"] / results["bare"]["rps"]
        print(
            f"\nload: {client}, {args.connections} connections, {args.duration} s each, "
            "one uvicorn worker, loopback"
        )
        print(f"{'endpoint':<34}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'non-2xx':>9}")
        for name, label in (("case_list", path), ("bare", "bare FastAPI, same JSON")):
            r = results[name]
            print(
                f"{label:<34}{r['rps']:>10.0f}{r['p50_ms']:>10.1f}{r['p99_ms']:>10.1f}{r['non_2xx']:>9}"
            )
        ok_rps = ratio >= 0.5
        ok_p99 = results["case_list"]["p99_ms"] <= 50
        print(
            f"ratio case list / bare: {ratio:.2f} (target >= 0.50: {'met' if ok_rps else 'NOT met'}); "
            f"case list p99 {results['case_list']['p99_ms']:.1f} ms "
            f"(target <= 50: {'met' if ok_p99 else 'NOT met'})"
        )
        if args.json:
            args.json.write_text(
                json.dumps(
                    {
                        "results": results,
                        "ratio": ratio,
                        "unit": unit,
                        "cases": n_cases,
                        "bytes": len(body),
                        "connections": args.connections,
                        "duration": args.duration,
                    },
                    indent=2,
                ),
                encoding="utf-8",
            )
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(workspace, ignore_errors=True)


def _serve_main(argv: list[str]) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("serve-api", "serve-bare"))
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--db")
    ap.add_argument("--workspace")
    ap.add_argument("--payload")
    a = ap.parse_args(argv)
    if a.mode == "serve-api":
        _serve_api(a.db, a.workspace, a.port)
    else:
        _serve_bare(a.payload, a.port)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("serve-api", "serve-bare"):
        sys.exit(_serve_main(sys.argv[1:]))
    sys.exit(main())
