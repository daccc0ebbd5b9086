"""How the read side scales: a store of 100,000 runs x 12 fine-tuning epochs (4.8M epoch rows).

    python benchmarks/bench_store_scale.py [--runs 100000] [--epochs 12] [--workspace DIR] [--keep]

Writes the rows straight into DuckDB with the real schema (one SQL statement per table, values
from hashes, so the same arguments give the same store), then times each command in a fresh
process, as a user would run it, and reads that process's peak memory:

    divrob results --study scale                 target <= 1 s   (a table that summarises)
    divrob plot trends scale --json              target <= 2 s
    divrob results --study scale --format csv    every epoch row to a file (no target)
    peak memory of either                        target < 1 GB
    the TUI's first paint of Results and Trends  target <= 1.5 s  (headless, 80x24, fresh process)

Each line also gives the process's CPU time (all its threads), which a busy machine distorts
less than wall time. Also prints the in-process time of the core calls the TUI's first paint uses
(`report.study_points`, `report.run_summary`, `robustness.analyse`). The last line is
`seconds: X`, the slowest command's (or first paint's) wall time. Figures taken on a shared machine are "under load".
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STUDY = "scale"
DISTRIBUTIONS = [("scratch", None, -0.7), ("shapes-500", 500, -0.55), ("shapes-2000", 2000, -0.4),
                 ("shapes-8000", 8000, -0.3), ("imagenet-5000", 5000, -0.5), ("imagenet-25000", 25000, -0.45),
                 ("imagenet-50000", 50000, -0.4), ("imagenet-100000", 100000, -0.35),
                 ("imagenet-150000", 150000, -0.3), ("imagenet-full", None, -0.25)]
ARCHS = ["resnet18", "resnet50", "densenet121", "mobilenet_v3_large", "alexnet", "resnext50_32x4d"]
SPLITS = ["id_test", "test", "id_val", "val"]


def _uniform(*keys: str) -> str:
    """SQL for a deterministic uniform (0, 1) value from the hash of `keys`."""
    return f"((hash({', '.join(keys)}) % 1000003) + 0.5) / 1000003.0"


def _normal(*keys: str) -> str:
    """SQL for a deterministic standard normal value (Box-Muller on two hashed uniforms)."""
    u1, u2 = _uniform(*keys, "'a'"), _uniform(*keys, "'b'")
    return f"(sqrt(-2 * ln({u1})) * cos(2 * pi() * {u2}))"


def _phi(z: str) -> str:
    """A close logistic stand-in for the normal CDF (DuckDB has none): |error| < 0.01."""
    return f"(1 / (1 + exp(-1.702 * ({z}))))"


def build_store(ws_root: Path, runs: int, epochs: int) -> float:
    """Create the workspace and fill its store; returns the seconds it took."""
    from divrob.store.db import write_connection
    from divrob.workspace import init_workspace

    start = time.perf_counter()
    ws = init_workspace(ws_root)
    names = "[" + ", ".join(f"'{d[0]}'" for d in DISTRIBUTIONS) + "]"
    sweeps = "[" + ", ".join("NULL" if d[1] is None else f"'{{\"total\": {d[1]}}}'" for d in DISTRIBUTIONS) + "]"
    icepts = "[" + ", ".join(str(d[2]) for d in DISTRIBUTIONS) + "]"
    archs = "[" + ", ".join(f"'{a}'" for a in ARCHS) + "]"
    nd, na = len(DISTRIBUTIONS), len(ARCHS)
    with write_connection(ws.db_path) as con:
        con.execute(f"""
            CREATE TEMP TABLE gen AS
            SELECT k, printf('%016x', hash(k, 'run')) AS run_id, k % {nd} AS d, (k // {nd}) % {na} AS a,
                   k // {nd * na} AS seed
            FROM range({runs}) t(k)""")
        con.execute(f"""
            INSERT INTO study_runs (study, distribution, run_id, arch, seed, manifest_id, source, sweep)
            SELECT '{STUDY}', {names}[d + 1], run_id, {archs}[a + 1], seed,
                   CASE WHEN d = 0 THEN NULL ELSE 'manifest' || d END,
                   CASE WHEN d = 0 THEN NULL WHEN d < 4 THEN 'demo-shapes' ELSE 'imagenet' END,
                   {sweeps}[d + 1]
            FROM gen""")
        con.execute(f"""
            INSERT INTO runs (run_id, arch, seed, downstream, manifest_id, state, reason, spec, updated)
            SELECT run_id, {archs}[a + 1], seed, 'camtrap-sim', CASE WHEN d = 0 THEN NULL ELSE 'manifest' || d END,
                   'finished', NULL, '{{}}', 1.7e9 + k
            FROM gen""")
        noise_x = _normal("k", "e.epoch", "'x'")
        noise_run = _normal("k", "'run'")
        noise_y = _normal("k", "e.epoch", "'y'")
        x = f"(-1.3 + 0.1 * a + 0.08 * e.epoch + 0.05 * {noise_x})"
        y = f"(0.9 * {x} + {icepts}[d + 1] + 0.1 * {noise_run} + 0.03 * {noise_y})"
        f1 = (f"CASE s.split WHEN 'id_test' THEN {_phi('x')} WHEN 'test' THEN {_phi('y')} "
              f"WHEN 'id_val' THEN {_phi('x + 0.02')} ELSE {_phi('y + 0.02')} END")
        con.execute(f"""
            INSERT INTO epochs (run_id, phase, epoch, split, f1_macro, acc, recall_macro, loss, n, score)
            SELECT run_id, 'finetune', epoch, split, f1, least(1.0, f1 + 0.2), f1, 1 - f1, 500, f1
            FROM (
                SELECT g.run_id, g.epoch, s.split, {f1} AS f1
                FROM (SELECT run_id, e.epoch AS epoch, {x} AS x, {y} AS y
                      FROM gen, range(1, {epochs + 1}) e(epoch)) g
                CROSS JOIN (SELECT unnest({SPLITS!r}) AS split) s
            )""")
    return time.perf_counter() - start


def run_child(argv: list[str]) -> dict:
    """Run one divrob command in a fresh process; its wall time, its own timing and peak RSS."""
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, __file__, "--child", *argv], capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "COLUMNS": "100", "LINES": "30", "PATH": "/usr/bin:/bin"})
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"divrob {' '.join(argv)} failed:\n{proc.stderr[-2000:]}")
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    return {"wall": wall, **report, "stdout_lines": proc.stdout.count("\n")}


def child(argv: list[str]) -> None:
    """Inside the fresh process: run the command with its output captured, report on stderr."""
    start = time.perf_counter()
    from divrob.cli import app

    try:
        app(argv, standalone_mode=False)
    finally:
        sys.stdout.flush()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        print(json.dumps({"in_process": time.perf_counter() - start, "peak_mb": usage.ru_maxrss / 1024,
                          "cpu": usage.ru_utime + usage.ru_stime}), file=sys.stderr)


def tui_child(mode: str, ws_root: str) -> None:
    """Inside a fresh process: start the TUI headless at 80x24 on `mode` and time its first paint
    (Results: the table's first rows; Trends: every distribution's trend line fitted to all the
    points and drawn, before the bands and intervals are resampled), from before the import."""
    import asyncio

    start = time.perf_counter()
    from divrob.tui.app import DivrobApp

    async def first_paint() -> float:
        app = DivrobApp(ws_root, start=mode, refresh_s=3600)
        async with app.run_test(size=(80, 24)) as pilot:
            # Poll with a plain sleep: a Pilot pause waits for every queue to drain, and polling
            # with it every few milliseconds would slow the app it times.
            while True:
                screen = app.screen
                if mode == "trends" and getattr(screen, "painted_trends", None) is not None:
                    painted = screen.painted_trends - start  # stamped once the frame was drawn
                    while getattr(screen, "analysed_key", None) is None:
                        await asyncio.sleep(0.02)  # then the bands and intervals
                    return painted, time.perf_counter() - start
                if mode == "results" and screen.query("#table") and screen.query_one("#table").row_count:
                    await pilot.pause()  # the frame with it
                    painted = time.perf_counter() - start
                    return painted, painted
                if time.perf_counter() - start > 300:
                    raise SystemExit(f"the {mode} screen painted nothing in 300 s")
                await asyncio.sleep(0.02)

    seconds, complete = asyncio.run(first_paint())
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"in_process": seconds, "complete": complete, "peak_mb": usage.ru_maxrss / 1024,
                      "cpu": usage.ru_utime + usage.ru_stime}), file=sys.stderr)


def run_tui_child(mode: str, ws_root: Path) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--tui-child", mode, str(ws_root)], check=False, capture_output=True,
                          text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "TERM": "xterm-256color"})
    if proc.returncode != 0:
        raise SystemExit(f"the TUI's {mode} screen failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stderr.strip().splitlines()[-1])


def core_timings(ws_root: Path) -> dict[str, float]:
    from divrob.analysis.report import run_summary, study_points
    from divrob.analysis.robustness import analyse
    from divrob.workspace import open_workspace

    ws = open_workspace(ws_root)
    out = {}
    t = time.perf_counter()
    points = study_points(ws, STUDY)
    out["study_points"] = time.perf_counter() - t
    t = time.perf_counter()
    run_summary(points)
    out["run_summary"] = time.perf_counter() - t
    t = time.perf_counter()
    analyse(points)
    out["analyse"] = time.perf_counter() - t
    out["points"] = len(points)
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--tui-child":
        tui_child(sys.argv[2], sys.argv[3])
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=100_000)
    ap.add_argument("--epochs", type=int, default=12)
    ap.add_argument("--workspace", type=Path, help="where to build the store (default: a temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    args = ap.parse_args()

    tmp = None
    if args.workspace is None:
        tmp = tempfile.TemporaryDirectory(prefix="divrob-scale-")
        args.workspace = Path(tmp.name) / "ws"
    ws = args.workspace
    if not (ws / "divrob.duckdb").exists():
        built = build_store(ws, args.runs, args.epochs)
        print(f"store: {args.runs} runs x {args.epochs} epochs x {len(SPLITS)} splits "
              f"= {args.runs * args.epochs * len(SPLITS):,} epoch rows, built in {built:.1f} s")
    import os

    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (wall times above ~1 per CPU are "
          f"'under load'; cpu is the process's own user+system time, all threads)")
    csv_out = Path(tempfile.mkdtemp(prefix="divrob-scale-csv-")) / "rows.csv"
    commands = {
        "results --study (table)": ["results", "--study", STUDY, "-w", str(ws)],
        "plot trends --json": ["plot", "trends", STUDY, "--json", "-w", str(ws)],
        "results --format csv": ["results", "--study", STUDY, "--format", "csv", "--output", str(csv_out),
                                 "-w", str(ws)],
    }
    targets = {"results --study (table)": 1.0, "plot trends --json": 2.0}
    slowest = 0.0
    for name, argv in commands.items():
        r = run_child(argv)
        if name in targets:
            slowest = max(slowest, r["wall"])
        target = f"(target <= {targets[name]:.0f} s)" if name in targets else "(no target)    "
        print(f"divrob {name:24s} wall {r['wall']:5.2f} s {target}  "
              f"cpu {r['cpu']:5.2f} s  peak {r['peak_mb']:4.0f} MB (target < 1024)  "
              f"{r['stdout_lines']} lines printed")
    csv_out.unlink(missing_ok=True)
    csv_out.parent.rmdir()
    for mode in ("results", "trends"):
        r = run_tui_child(mode, ws)
        slowest = max(slowest, r["in_process"])
        done = f"  (bands and intervals at {r['complete']:.2f} s)" if mode == "trends" else ""
        print(f"tui {mode:7s} first paint     wall {r['in_process']:5.2f} s (target <= 1.5 s)  "
              f"cpu {r['cpu']:5.2f} s  peak {r['peak_mb']:4.0f} MB (target < 1024){done}")
    for name, seconds in core_timings(ws).items():
        print(f"core {name:14s} {seconds:8.3f}" + (" s" if name != "points" else " rows"))
    if tmp is not None and args.keep:
        print(f"kept: {ws}")
    elif tmp is not None:
        tmp.cleanup()
    print(f"seconds: {slowest:.3f}")


if __name__ == "__main__":
    main()
