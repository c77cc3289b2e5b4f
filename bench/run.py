"""omnicanal's benchmark: one command, bounded scenarios, one table (also written as JSON).

    python bench/run.py                       # every scenario, < 10 minutes on 2 cores
    python bench/run.py --quick               # smaller and shorter, < 2 minutes (a smoke run)
    python bench/run.py --scenarios steps,latency --json bench/results.json

It starts what it needs (a stand-in provider, omnicanal api/worker processes on the real Redis at
127.0.0.1:6379 DBs 14 and 15 (BENCH_ENGINE_DB and BENCH_SCRATCH_DB say others), the bare baselines, the arq and
Celery peers), stops all of it at the end, and flushes those DBs before and after. See bench/README.md for what
each row means.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent
_VENV_PYTHON = _REPO / ".venv" / "bin" / "python"
if Path(sys.prefix).resolve() != (_REPO / ".venv").resolve() and _VENV_PYTHON.exists():
    os.execv(str(_VENV_PYTHON), [str(_VENV_PYTHON), *sys.argv])  # the engine's virtualenv has what we need

import argparse  # noqa: E402 - after the re-exec above
import asyncio  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

import aiohttp  # noqa: E402
import limits as redis_limits  # noqa: E402
import report  # noqa: E402
from common import (  # noqa: E402
    BENCH,
    ENGINE_DB,
    REPO,
    SCRATCH_DB,
    ProcessGroup,
    background_cores_busy,
    cpu_probe,
    free_port,
    python_argv,
    wait_http,
)
from peer import ensure_venvs  # noqa: E402
from scenarios import Context, Sizes, flush, scenario_ingest, scenario_population, scenario_steps  # noqa: E402
from schedule import scenario_schedule  # noqa: E402

SCENARIOS = ("steps", "latency", "ingest", "waiting", "timers", "schedule")
DEFAULT_SCENARIOS = SCENARIOS[:5]
"""What a run without --scenarios measures (< 10 minutes): `schedule` writes 10^6 profiles first, on its own."""


def machine() -> dict[str, str]:
    def run(*argv: str) -> str:
        try:
            return subprocess.run(argv, capture_output=True, text=True, cwd=REPO, check=False).stdout.strip()
        except OSError:
            return ""

    dirty = bool(run("git", "status", "--porcelain", "--untracked-files=no", "--", "src", "connectors", "journeys",
                     "templates"))
    redis_version = run("redis-server", "--version").split(" v=")[-1].split()[0] if shutil.which("redis-server") \
        else ""
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "uname": run("uname", "-a"),
            "nproc": run("nproc"), "commit": run("git", "rev-parse", "--short", "HEAD") + (" (+ uncommitted changes)"
                                                                                            if dirty else ""),
            "python": platform.python_version(), "redis": redis_version}


ENGINE_FILES = ("src", "connectors", "journeys", "templates")


def tree_fingerprint() -> str:
    """The engine's code as run: HEAD plus uncommitted changes (others may be editing it during the run)."""
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=REPO).stdout
    diff = subprocess.run(["git", "diff", "HEAD", "--", *ENGINE_FILES], capture_output=True, cwd=REPO).stdout
    return hashlib.sha1(head.encode() + diff).hexdigest()[:12]


def engine_log_summary(log_dir: Path) -> list[str]:
    """Warnings and errors the engine's processes logged during the run, counted (they explain slow rows)."""
    counts: dict[str, int] = {}
    for path in sorted(log_dir.glob("engine-*.log")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if isinstance(entry, dict) and entry.get("level") in ("warning", "error", "critical"):
                detail = str(entry.get("error") or entry.get("detail") or "")[:100]
                key = f"{path.stem.rsplit('-', 1)[0] if path.stem[-1].isdigit() else path.stem}: " \
                      f"{entry.get('level')} {entry.get('event')}" + (f" ({detail})" if detail else "")
                counts[key] = counts.get(key, 0) + 1
    return [f"{n} x {key}" for key, n in sorted(counts.items(), key=lambda kv: -kv[1])]


async def main(args: argparse.Namespace) -> int:
    if args.record_from is not None:
        if args.record is None:
            print("--record-from needs --record LABEL: the label of the history line", file=sys.stderr)
            return 2
        rows, meta = report.read_json(Path(args.record_from))
        report.record_results(BENCH / "RESULTS.md", rows, meta, args.record)
        print(f"recorded {args.record_from} in bench/RESULTS.md (last run, and a line of history)")
        return 0
    selected = [name.strip() for name in args.scenarios.split(",") if name.strip()]
    unknown = set(selected) - set(SCENARIOS)
    if unknown:
        print(f"unknown scenario(s): {', '.join(sorted(unknown))}; known: {', '.join(SCENARIOS)}", file=sys.stderr)
        return 2
    if not redis_limits.has_redis_benchmark():
        print("redis-benchmark is needed for the limits: apt-get install redis-tools", file=sys.stderr)
        return 2
    started = time.monotonic()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    run_dir = BENCH / ".runs" / stamp
    run_dir.mkdir(parents=True, exist_ok=True)

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    peers = [] if args.no_peers else ensure_venvs()
    group = ProcessGroup(run_dir / "logs")
    rows: list[report.Row] = []
    limits = redis_limits.Limits()
    meta = {**machine(), "quick": args.quick, "scenarios": selected, "peers": [p.name for p in peers],
            "cpu_probe_s": cpu_probe()}
    fingerprint = tree_fingerprint()
    try:
        await flush(ENGINE_DB, SCRATCH_DB)
        await redis_limits.prepare()
        port = free_port()
        standin = group.start("standin", python_argv(BENCH / "standin.py", "--port", str(port)))
        await wait_http(f"http://127.0.0.1:{port}/stats", standin)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
            ctx = Context(quick=args.quick, sizes=Sizes.for_run(args.quick), run_dir=run_dir, group=group,
                          standin_url=f"http://127.0.0.1:{port}", standin_pid=standin.pid, limits=limits,
                          peers=peers, session=session, log=log, segments=args.segments)
            background: dict[str, float] = {}
            meta["background_cores_busy"] = background

            async def check_background(name: str) -> None:
                background[name] = round(await background_cores_busy(), 2)
                if background[name] > 0.25:
                    log(f"warning: before {name}, other processes keep {background[name]:.2f} cores busy: "
                        "the numbers will be lower than on a quiet machine")

            if "steps" in selected:
                await check_background("steps")
                rows += await scenario_steps(ctx)
            if "ingest" in selected:
                await check_background("ingest")
                rows += await scenario_ingest(ctx)
            population = {"waiting", "latency", "timers"} & set(selected)
            if population:
                await check_background("waiting/latency/timers")
                rows += await scenario_population(ctx, population)
            if "schedule" in selected:
                await check_background("schedule")
                rows += await scenario_schedule(ctx)
    finally:
        await group.stop_all()
        await flush(ENGINE_DB, SCRATCH_DB)
        await redis_limits.cleanup()
    meta["seconds"] = round(time.monotonic() - started, 1)
    if tree_fingerprint() != fingerprint:
        meta["commit"] = f"{meta['commit']} (working tree CHANGED during the run: numbers mix code versions)"
    meta["engine_log"] = engine_log_summary(group.log_dir)
    meta["redis_benchmark_rates"] = limits.rates
    meta["redis_mix"] = ctx.mixes
    meta["peers_skipped_in"] = ctx.skipped_peers
    if limits.unknown:
        meta["commands_benchmarked_as_ping"] = sorted(limits.unknown)
    order = {name: i for i, name in enumerate(SCENARIOS)}
    rows.sort(key=lambda row: order.get(row.scenario, 99))
    print()
    print(f"omnicanal bench — {meta['date']}, commit {meta['commit']}, {meta['nproc']} cores, Redis {meta['redis']}"
          f"{', QUICK run' if args.quick else ''}, {meta['seconds']:.0f}s")
    print(f"CPU probe: a 5·10^6-step Python loop takes {meta['cpu_probe_s']:.3f} s (lower is faster; compare runs "
          "at a similar probe)")
    busy = meta.get("background_cores_busy") or {}
    if busy:
        print("other processes' CPU before each scenario (cores): "
              + ", ".join(f"{name} {cores:.2f}" for name, cores in busy.items()))
    print(report.table(rows))
    notes = [f"  {row.scenario} / {row.metric}: {row.note}" for row in rows if row.note]
    notes += [f"  engine log: {line}" for line in meta["engine_log"][:8]]
    if ctx.skipped_peers:
        notes.append(f"  peers skipped in {', '.join(ctx.skipped_peers)}: the run was past its peer budget "
                     f"({ctx.sizes.peer_budget:.0f} s; the machine is slower than usual)")
    if notes:
        print("notes:\n" + "\n".join(notes))
    print(report.limits_legend(rows))
    for name, mix in ctx.mixes.items():
        top = ", ".join(f"{cmd} {per:.2f}" for cmd, per in list(mix.items())[:12])
        print(f"  {name}: {sum(mix.values()):.1f} — {top}")
    report.write_json(Path(args.json), rows, meta)
    print(f"written: {args.json}")
    if args.record is not None:
        report.record_results(BENCH / "RESULTS.md", rows, meta, args.record)
        print("recorded in bench/RESULTS.md (last run, and a line of history)")
    return 0


def cli() -> None:
    parser = argparse.ArgumentParser(description="omnicanal's benchmark: bounded scenarios, one table.")
    parser.add_argument("--quick", action="store_true", help="smaller and shorter: a smoke run under 2 minutes")
    parser.add_argument("--scenarios", default=",".join(DEFAULT_SCENARIOS),
                        help=f"comma-separated, among {', '.join(SCENARIOS)} (default: all but schedule)")
    parser.add_argument("--json", default=str(BENCH / "results.json"), help="where to write the JSON results")
    parser.add_argument("--no-peers", action="store_true", help="skip the arq and Celery peers")
    parser.add_argument("--segments", type=Path, metavar="DIR",
                        help="segments the engine keeps in the steps scenario (bench/segments: two, over the "
                             "scenario's events), to measure what they cost")
    parser.add_argument("--record", metavar="LABEL",
                        help="write this run into bench/RESULTS.md: the last-run section, and a history line "
                             "labelled LABEL (e.g. 'after: one Lua script per commit')")
    parser.add_argument("--record-from", metavar="JSON",
                        help="with --record: record a run already made (its --json file) instead of running one")
    sys.exit(asyncio.run(main(parser.parse_args())))


if __name__ == "__main__":
    cli()
