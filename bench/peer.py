"""Running the peers (bench/peers/): their workers, their event endpoint and their driver commands.

Each peer has its own virtualenv under bench/.venv-peers/ (arq needs redis<6, Celery's Redis transport >=6.4),
made on first use from bench/peers/requirements-NAME.txt. Both use Redis DB 15, flushed around each use.
Two worker processes each, as the engine's two workers: two arq worker processes, or one Celery worker with
a prefork pool of two processes.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import BENCH, SCRATCH_DB, Proc, ProcessGroup, free_port, wait_http

PEER_DB = SCRATCH_DB
PEERS_DIR = BENCH / "peers"
VENVS = BENCH / ".venv-peers"


@dataclass
class Peer:
    name: str

    @property
    def python(self) -> Path:
        return VENVS / self.name / "bin" / "python"

    @property
    def script(self) -> Path:
        return PEERS_DIR / f"{self.name}_journey.py"

    def env(self, standin_url: str, wait_first: float, wait_order: float) -> dict[str, str]:
        return {"PEER_REDIS_URL": f"redis://127.0.0.1:6379/{PEER_DB}", "PEER_PROVIDER_URL": f"{standin_url}/msg",
                "PEER_WAIT_FIRST": repr(wait_first), "PEER_WAIT_ORDER": repr(wait_order)}

    async def start_workers(self, group: ProcessGroup, env: dict[str, str], processes: int = 2) -> list[Proc]:
        if self.name == "celery":
            procs = [group.start("celery-worker", [str(self.python), str(self.script), "worker", "--concurrency",
                                                   str(processes)], env)]
        else:
            procs = [group.start(f"arq-worker-{i + 1}", [str(self.python), str(self.script), "worker"], env)
                     for i in range(processes)]
        await asyncio.sleep(2.5 if self.name == "celery" else 1.0)  # imports, broker connection
        for proc in procs:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
        return procs

    async def start_web(self, group: ProcessGroup, env: dict[str, str]) -> tuple[Proc, str]:
        port = free_port()
        proc = group.start(f"{self.name}-web", [str(self.python), str(self.script), "web", "--port", str(port)], env)
        url = f"http://127.0.0.1:{port}"
        await wait_http(f"{url}/readyz", proc)
        return proc, url

    async def run(self, env: dict[str, str], *args: str, timeout: float = 300.0) -> dict[str, Any]:
        """A driver command (profiles, steps, park, burst); its JSON answer."""
        import os

        process = await asyncio.create_subprocess_exec(
            str(self.python), str(self.script), *args, env={**os.environ, **env},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(process.communicate(), timeout)
        if process.returncode != 0:
            raise RuntimeError(f"{self.name} {' '.join(args)} failed: {err.decode()[-800:]}")
        result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return result


def all_pids(procs: list[Proc]) -> list[int]:
    """The processes and their children (Celery's prefork pool)."""
    pids: list[int] = []
    for proc in procs:
        pids.append(proc.pid)
        try:
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        except OSError:
            children = []
        pids.extend(int(child) for child in children)
    return pids


def ensure_venvs(names: tuple[str, ...] = ("arq", "celery")) -> list[Peer]:
    """The peers whose virtualenv is there or could be made now; the others are left out (reported n/a)."""
    ready = []
    for name in names:
        peer = Peer(name)
        if not peer.python.exists():
            print(f"  making bench/.venv-peers/{name} (first run only)...", file=sys.stderr, flush=True)
            try:
                subprocess.run([sys.executable, "-m", "venv", str(VENVS / name)], check=True)
                subprocess.run([str(peer.python), "-m", "pip", "install", "-q", "-r",
                                str(PEERS_DIR / f"requirements-{name}.txt")], check=True)
            except subprocess.CalledProcessError as exc:
                print(f"  peer {name} unavailable: {exc}", file=sys.stderr)
                continue
        check = subprocess.run([str(peer.python), "-c", f"import {name}, jinja2, yaml, aiohttp"], capture_output=True)
        if check.returncode == 0:
            ready.append(peer)
        else:
            print(f"  peer {name} unavailable: {check.stderr.decode()[-300:]}", file=sys.stderr)
    return ready
