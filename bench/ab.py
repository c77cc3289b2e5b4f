"""Two versions of the engine side by side on the `steps` scenario: the same machine, the same minutes.

A rate recorded another day does not compare (a virtual machine's cores change speed from one hour to the next,
see README.md); two versions run alternately, round after round, do. Each version runs its own bench code
(`bench/scenarios.engine_steps` of that version), so a change of the harness cannot pass for a change of the
engine.

    python bench/ab.py --base 73cd509                  # that commit against this working tree, 1 worker, 3 rounds
    python bench/ab.py --base 73cd509 --head main --workers 1,2 --rounds 5

A version other than the working tree is checked out once under bench/.runs/ab/<commit> with its own virtualenv
(`pip install -e .`, ~30 s the first time). The runs use Redis DB 13 (`--db`), flushed by each run. The table
gives each side's median steps/s, messages/s, worker CPU per journey step and per message (the numbers least
moved by other processes; per message is the fairer of the two across versions, which may count the same work's
journey steps differently), Redis's CPU per message (the whole server's: nothing else may use that Redis meanwhile;
with 2 workers on 2 cores it takes from the workers), and head ÷ base.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CHECKOUTS = BENCH / ".runs" / "ab"


def _git(*args: str, cwd: Path = REPO) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def checkout(ref: str | None) -> tuple[str, Path]:
    """(label, folder with a .venv) of `ref`; None: this working tree as it is."""
    if ref is None:
        return "working tree", REPO
    commit = _git("rev-parse", "--verify", f"{ref}^{{commit}}")
    folder = CHECKOUTS / commit[:12]
    if not (folder / ".venv" / "bin" / "omnicanal").exists():
        if not folder.exists():
            CHECKOUTS.mkdir(parents=True, exist_ok=True)
            _git("worktree", "add", "--detach", str(folder), commit)
        print(f"ab: installing {ref} ({commit[:12]}) in {folder.relative_to(REPO)}", file=sys.stderr, flush=True)
        subprocess.run([sys.executable, "-m", "venv", ".venv"], cwd=folder, check=True)
        subprocess.run([".venv/bin/pip", "install", "-q", "-e", "."], cwd=folder, check=True)
    return f"{ref} ({commit[:9]})", folder


def run_side(folder: Path, workers: int, db: int) -> dict[str, float]:
    """One `steps` run of the version in `folder`, with its own Python and bench code."""
    done = subprocess.run([str(folder / ".venv" / "bin" / "python"), str(Path(__file__)), "--side", str(workers),
                           "--db", str(db)], cwd=folder, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"ab: the run in {folder} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def side_main(workers: int, db: int) -> None:
    """In a version's folder: run its engine_steps once and print the numbers as one JSON line."""
    import asyncio
    import time

    sys.path.insert(0, str(Path.cwd() / "bench"))
    import aiohttp
    import limits as redis_limits
    import scenarios
    from common import ProcessGroup, free_port, python_argv, wait_http

    scenarios.ENGINE_DB = db  # read at call time by the scenario: older versions have no setting for it

    async def main() -> dict[str, float]:
        run_dir = Path.cwd() / "bench" / ".runs" / f"ab-{time.strftime('%Y%m%dT%H%M%S')}"
        run_dir.mkdir(parents=True, exist_ok=True)
        group = ProcessGroup(run_dir / "logs")
        try:
            await redis_limits.prepare()
            port = free_port()
            standin = group.start("standin", python_argv(Path.cwd() / "bench" / "standin.py", "--port", str(port)))
            await wait_http(f"http://127.0.0.1:{port}/stats", standin)
            async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as session:
                ctx = scenarios.Context(
                    quick=False, sizes=scenarios.Sizes.for_run(False), run_dir=run_dir, group=group,
                    standin_url=f"http://127.0.0.1:{port}", standin_pid=standin.pid, limits=redis_limits.Limits(),
                    peers=[], session=session, log=lambda message: None)
                result = await scenarios.engine_steps(ctx, workers)
        finally:
            await group.stop_all()
            await redis_limits.cleanup()
        worker_cpu = result["worker_cores_busy"] * result["wall"]
        cpu_per_step = worker_cpu / max(result["steps"], 1)
        return {"steps_per_s": result["steps_per_s"], "messages_per_s": result["messages_per_s"],
                "worker_us_per_step": cpu_per_step * 1e6,
                "worker_us_per_message": worker_cpu / max(result["messages"], 1) * 1e6,
                "redis_us_per_message": result["redis_core_busy"] * result["wall"] / max(result["messages"], 1) * 1e6,
                "duplicates": result["duplicates"]}

    print(json.dumps(asyncio.run(main())))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--base", help="the version to compare against (a commit, tag or branch)")
    parser.add_argument("--head", help="the version compared (default: this working tree)")
    parser.add_argument("--workers", default="1", help="comma-separated worker counts (default: 1)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per side and worker count (default: 3)")
    parser.add_argument("--db", type=int, default=13, help="the Redis DB the runs use (default: 13)")
    parser.add_argument("--side", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side is not None:
        side_main(args.side, args.db)
        return 0
    if args.base is None:
        parser.error("--base is required: the version to compare against")
    sides = [checkout(args.base), checkout(args.head)]
    rows: dict[tuple[str, int], list[dict[str, float]]] = {}
    for workers in (int(w) for w in args.workers.split(",")):
        for round_ in range(1, args.rounds + 1):
            for label, folder in sides:
                result = run_side(folder, workers, args.db)
                rows.setdefault((label, workers), []).append(result)
                print(f"ab: round {round_}/{args.rounds}, {workers} worker(s), {label}: "
                      f"{result['steps_per_s']:,.0f} steps/s, {result['worker_us_per_step']:.0f} µs/step",
                      file=sys.stderr, flush=True)
    print("\n| workers | version | steps/s | messages/s | worker CPU per step | worker CPU per message "
          "| Redis CPU per message | duplicates |")
    print("|---|---|---|---|---|---|---|---|")
    medians: dict[tuple[str, int], dict[str, float]] = {}
    for (label, workers), results in rows.items():
        median = {name: statistics.median(r[name] for r in results) for name in results[0]}
        medians[label, workers] = median
        print(f"| {workers} | {label} | {median['steps_per_s']:,.0f} | {median['messages_per_s']:,.0f} | "
              f"{median['worker_us_per_step']:.0f} µs | {median['worker_us_per_message']:.0f} µs | "
              f"{median['redis_us_per_message']:.0f} µs | {sum(r['duplicates'] for r in results):.0f} |")
    for workers in sorted({w for _, w in rows}):
        base, head = medians[sides[0][0], workers], medians[sides[1][0], workers]
        print(f"| {workers} | head ÷ base | {head['steps_per_s'] / base['steps_per_s']:.2f} | "
              f"{head['messages_per_s'] / base['messages_per_s']:.2f} | "
              f"{head['worker_us_per_step'] / base['worker_us_per_step']:.2f} | "
              f"{head['worker_us_per_message'] / base['worker_us_per_message']:.2f} | "
              f"{head['redis_us_per_message'] / base['redis_us_per_message']:.2f} | |")
    print(f"\n(medians of {args.rounds} alternating runs; other processes' load: {os.getloadavg()[0]:.2f} "
          "(1-minute load average at the end))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
