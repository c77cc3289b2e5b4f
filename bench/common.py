"""What the scenarios share: child processes, free ports, HTTP polling, percentiles, RSS, Redis INFO."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import redis.asyncio as aioredis

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
VENV_PYTHON = REPO / ".venv" / "bin" / "python"
PEERS_PYTHON = BENCH / ".venv-peers" / "bin" / "python"
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
ENGINE_DB = int(os.environ.get("BENCH_ENGINE_DB", "14"))
"""The database the engine runs in (flushed before and after each scenario)."""
SCRATCH_DB = int(os.environ.get("BENCH_SCRATCH_DB", "15"))
"""The database of redis-benchmark's keys, the peers and the bare relay (flushed around each use)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def rss_mb(pid: int) -> float:
    """Resident set size of a process, in MiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def cpu_times() -> tuple[float, float]:
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]
    return sum(fields), idle


async def background_cores_busy(seconds: float = 1.0) -> float:
    """How many cores something is keeping busy right now (sampled over `seconds`): the bench runs on a shared
    machine, and a number taken while other work runs says so."""
    before = cpu_times()
    await asyncio.sleep(seconds)
    return cores_busy_since(before)


def cpu_probe(steps: int = 5_000_000) -> float:
    """Seconds a fixed pure-Python loop takes (best of 3): how fast this machine's cores are right now. A shared
    or virtual machine can be twice as slow one day as the next with no other process visible; runs compare
    only at a similar probe."""
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        total = 0
        for i in range(steps):
            total += i
        best = min(best, time.perf_counter() - started)
    return round(best, 3)


def cores_busy_since(before: tuple[float, float]) -> float:
    """Cores kept busy (by every process of the machine) since `before` = cpu_times()."""
    total1, idle1 = cpu_times()
    return (os.cpu_count() or 1) * (1 - (idle1 - before[1]) / max(1e-9, total1 - before[0]))


@dataclass
class Proc:
    """A child process of the bench, with its output in a log file; stopped by its own pid only."""

    name: str
    argv: list[str]
    env: Mapping[str, str]
    log_dir: Path
    cwd: Path = REPO
    popen: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.log_dir / f"{self.name}.log"

    def start(self) -> Proc:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(self.argv, env=dict(self.env), cwd=self.cwd, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    async def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, wait, then SIGKILL: the process (and only its own session's children) is gone after."""
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while self.popen.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            while self.popen.poll() is None:
                await asyncio.sleep(0.05)


class ProcessGroup:
    """Every process a scenario started; `stop_all` ends them in reverse order."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.procs: list[Proc] = []

    def start(self, name: str, argv: list[str], env: Mapping[str, str] | None = None) -> Proc:
        merged = {**os.environ, **(env or {})}
        proc = Proc(name, argv, merged, self.log_dir).start()
        self.procs.append(proc)
        return proc

    async def stop(self, proc: Proc, timeout: float = 15.0) -> None:
        await proc.stop(timeout)
        if proc in self.procs:
            self.procs.remove(proc)

    async def stop_all(self) -> None:
        for proc in reversed(self.procs):
            await proc.stop()
        self.procs.clear()


async def wait_http(url: str, proc: Proc | None = None, timeout: float = 30.0) -> None:
    """Until GET url answers 200; fails early with the log's tail if the process died."""
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc is not None and not proc.alive():
                raise RuntimeError(f"{proc.name} exited during start-up:\n{proc.tail()}")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.1)
    tail = proc.tail() if proc else ""
    raise RuntimeError(f"{url} not ready after {timeout:.0f}s\n{tail}")


async def get_json(session: aiohttp.ClientSession, url: str) -> Any:
    async with session.get(url, timeout=aiohttp.ClientTimeout(total=60)) as response:
        response.raise_for_status()
        return await response.json()


def redis_client(db: int) -> aioredis.Redis:
    return aioredis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=db, decode_responses=True,
                          max_connections=200)


async def used_memory(redis: aioredis.Redis) -> int:
    info = await redis.info("memory")
    return int(info["used_memory"])


async def settle_memory(redis: aioredis.Redis, seconds: float = 1.0) -> int:
    """used_memory after a short pause (lazy frees and client buffers settle)."""
    await asyncio.sleep(seconds)
    return await used_memory(redis)


def python_argv(script: str | Path, *args: str, peers: bool = False) -> list[str]:
    python = PEERS_PYTHON if peers else Path(sys.executable)
    return [str(python), str(script), *args]
