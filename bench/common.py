"""Shared pieces: statistics, process control, /proc sampling, the machine description."""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import os
import platform
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from api.auth import Tokens
from api.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
JWT_SECRET = "bench-secret-" + "k" * 40
PASSWORD = "correct horse battery"
# Time-driven statuses must not drift while the benchmarks run (~25 min), or the
# sweeper would flood every subscriber with STATUS_CHANGED events and the seeded
# status mix would melt. One and two hours keep every seeded status stable.
THRESHOLD_ENV = {
    "IMBRACE_SOON_AFTER_S": "3600",
    "IMBRACE_OVERDUE_AFTER_S": "7200",
    "IMBRACE_AUTO_CLOSE_AFTER_S": "86400",
}
CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- statistics -------------------------------------------------------------------------------


def percentile(values, p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * p / 100.0
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def median(values):
    values = [v for v in values if v is not None]
    return percentile(values, 50) if values else None


def latency_summary(seconds: list[float]) -> dict:
    """Milliseconds."""
    if not seconds:
        return {"n": 0, "p50_ms": None, "p99_ms": None, "max_ms": None, "mean_ms": None}
    return {
        "n": len(seconds),
        "p50_ms": round(percentile(seconds, 50) * 1000, 2),
        "p99_ms": round(percentile(seconds, 99) * 1000, 2),
        "max_ms": round(max(seconds) * 1000, 2),
        "mean_ms": round(sum(seconds) / len(seconds) * 1000, 2),
    }


def across_runs(runs: list[dict], key: str) -> dict:
    """Median of one metric over repeated runs, with the per-run values."""
    values = [r.get(key) for r in runs if r.get(key) is not None]
    return {
        "median": round(median(values), 2) if values else None,
        "min": round(min(values), 2) if values else None,
        "max": round(max(values), 2) if values else None,
        "runs": values,
    }


# --- processes ----------------------------------------------------------------------------------


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 1 << 20
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _preexec_nofile() -> None:
    raise_nofile()


def python() -> str:
    return sys.executable


def imbrace_bin() -> str:
    candidate = Path(sys.executable).parent / "imbrace"
    return str(candidate) if candidate.exists() else "imbrace"


@dataclass
class Served:
    """A child process serving HTTP on a loopback port (``imbrace serve`` or the floor app)."""

    name: str
    process: subprocess.Popen
    port: int
    log_path: Path
    db_uri: str | None = None
    db_pid: int | None = None
    owns_db: bool = False  # started the embedded database itself (no MONGODB_URI)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/graphql"

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self, timeout: float = 30) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        # the embedded database is started in its own session: make sure it went with its server
        if self.owns_db and self.db_pid and _alive(self.db_pid):
            deadline = time.monotonic() + 10
            while _alive(self.db_pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            if _alive(self.db_pid):
                os.kill(self.db_pid, signal.SIGTERM)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def server_pythonpath(env: dict) -> str:
    """The checkout the bench runs from comes first: the ``imbrace`` script alone would import the
    package the virtualenv was installed from (an editable install of another worktree)."""
    return os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)


def start_serve(
    name: str, workdir: Path, data_dir: Path, mongodb_uri: str | None = None, extra_env: dict | None = None
) -> Served:
    """``imbrace serve`` as its own process. Without ``mongodb_uri`` it starts the embedded
    database itself on ``data_dir``; its URI is read from the server's log line."""
    port = free_port()
    env = dict(os.environ)
    env.pop("MONGODB_URI", None)
    env.update(THRESHOLD_ENV)
    env.update(
        {
            "IMBRACE_DATA_DIR": str(data_dir),
            "IMBRACE_JWT_SECRET": JWT_SECRET,
            "IMBRACE_DATABASE": "imbrace",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env["PYTHONPATH"] = server_pythonpath(env)
    if mongodb_uri:
        env["MONGODB_URI"] = mongodb_uri
    env.update(extra_env or {})
    log_path = workdir / f"{name}.log"
    log = open(log_path, "wb")
    process = subprocess.Popen(
        [imbrace_bin(), "serve", "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(workdir),
        preexec_fn=_preexec_nofile,
    )
    served = Served(name, process, port, log_path, db_uri=mongodb_uri)
    _wait_healthy(served, 180)
    if not mongodb_uri:
        match = re.search(r"embedded MongoDB \(nx-27017\) on (\S+),", log_path.read_text(errors="replace"))
        if not match:
            served.stop()
            raise RuntimeError(f"{name}: no embedded MongoDB URI in {log_path}")
        served.db_uri = match.group(1)
        served.db_pid = _pid_listening(int(re.search(r":(\d+)/", served.db_uri).group(1)))
        served.owns_db = True
    return served


def start_floor(workdir: Path, mongodb_uri: str) -> Served:
    port = free_port()
    env = dict(os.environ)
    env.update(THRESHOLD_ENV)
    env.update({"MONGODB_URI": mongodb_uri, "IMBRACE_DATABASE": "imbrace", "PYTHONUNBUFFERED": "1"})
    log_path = workdir / "floor.log"
    process = subprocess.Popen(
        [python(), "-m", "bench.floor", "--port", str(port)],
        stdout=open(log_path, "wb"),
        stderr=subprocess.STDOUT,
        env=env,
        cwd=str(ROOT),
        preexec_fn=_preexec_nofile,
    )
    served = Served("floor", process, port, log_path, db_uri=mongodb_uri)
    _wait_healthy(served, 60)
    return served


def _wait_healthy(served: Served, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if served.process.poll() is not None:
            raise RuntimeError(f"{served.name} exited ({served.process.returncode}); see {served.log_path}")
        try:
            if httpx.get(served.url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    served.stop()
    raise RuntimeError(f"{served.name} not healthy within {timeout}s; see {served.log_path}")


def _pid_listening(port: int) -> int | None:
    """The pid holding a listening TCP socket on ``port`` (via /proc, no psutil needed)."""
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if int(parts[1].split(":")[1], 16) == port and parts[3] == "0A":
                inode = parts[9]
                break
        if inode:
            break
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return int(pid)
        except OSError:
            continue
    return None


# --- /proc sampling -----------------------------------------------------------------------------


def cpu_seconds(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except OSError:
        return None


def rss_mb(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


class CpuMeter:
    """CPU use of some processes over an interval, in % of one core (200% = both cores)."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {k: v for k, v in pids.items() if v}
        self.start()

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.c0 = {k: cpu_seconds(p) for k, p in self.pids.items()}
        self.load0 = os.getloadavg()[0]

    def read(self) -> dict:
        dt = time.monotonic() - self.t0
        out = {}
        for k, p in self.pids.items():
            c1 = cpu_seconds(p)
            if c1 is not None and self.c0.get(k) is not None and dt > 0:
                out[f"{k}_cpu_pct"] = round((c1 - self.c0[k]) / dt * 100, 1)
                out[f"{k}_cpu_s"] = round(c1 - self.c0[k], 3)
            out[f"{k}_rss_mb"] = rss_mb(p)
        out["loadavg_1m"] = round(os.getloadavg()[0], 2)
        return out


def cpu_per_op(usage: dict, ops: int, unit: float = 1000, key: str = "server") -> float | None:
    """CPU time (user + sys) of one process per operation over a measured window: milliseconds
    (``unit`` 1000) or microseconds (1e6). Much less sensitive to other load on the machine than
    throughput: a process waiting for a core spends no CPU time."""
    cpu = usage.get(f"{key}_cpu_s")
    return round(cpu * unit / ops, 3) if cpu is not None and ops else None


def median_ratio(a: list[dict], b: list[dict], key: str) -> dict:
    """Per-run ratios ``a[key] / b[key]`` of paired runs, and their median."""
    ratios = [round(x[key] / y[key], 3) for x, y in zip(a, b, strict=False) if x.get(key) and y.get(key)]
    return {"median": sorted(ratios)[len(ratios) // 2] if ratios else None, "runs": ratios}


# --- tokens -------------------------------------------------------------------------------------


def mint_token(member_id: str, org_id: str) -> str:
    """Same HS256 token ``login`` hands out (the bench knows the server's secret)."""
    return Tokens(JWT_SECRET, 12 * 3600).issue(member_id, org_id)


async def login(url: str, email: str, password: str = PASSWORD) -> str:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        response = await client.post(
            "/graphql",
            json={
                "query": "mutation($i: LoginInput!) { login(input: $i) { token errors { code } } }",
                "variables": {"i": {"email": email, "password": password}},
            },
        )
        data = response.json()["data"]["login"]
        assert not data["errors"], data
        return data["token"]


# --- the machine --------------------------------------------------------------------------------


def machine() -> dict:
    model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    versions = {}
    for module in ("pymongo", "strawberry", "starlette", "uvicorn", "nx_27017", "websockets", "httpx"):
        try:
            from importlib.metadata import version

            versions[module] = version({"strawberry": "strawberry-graphql", "nx_27017": "nx-27017"}.get(module, module))
        except Exception:
            pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "api", "domain"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split("\n")
        dirty = [line[3:] for line in dirty if line.strip()]
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, []
    return {
        "git_commit": commit,
        "uncommitted_server_changes": dirty,
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "ram_gb": round(mem_kb / 1024 / 1024, 1) if mem_kb else None,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "date": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "nofile_limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "packages": versions,
    }


def write_json(path: Path, data) -> None:
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")


async def sleep_until(t: float) -> None:
    delay = t - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


def log(*args) -> None:
    print(time.strftime("%H:%M:%S"), *args, flush=True)


# --- profiling (py-spy) -------------------------------------------------------------------------

PROFILE: dict | None = None  # {"seconds": 10, "dir": Path}; set by bench.run --profile
_profiled: set[str] = set()


def maybe_profile(tag: str, pids: dict[str, int | None]) -> None:
    """Once per tag when profiling is on: ``py-spy record`` each process for a few seconds
    (non-blocking sampling, so the target is not paused), flame graphs into the results."""
    if PROFILE is None or tag in _profiled:
        return
    _profiled.add(tag)
    spy = Path(sys.executable).parent / "py-spy"
    for name, pid in pids.items():
        if not pid:
            continue
        out = PROFILE["dir"] / f"{tag}-{name}.svg"
        subprocess.Popen(
            [
                str(spy) if spy.exists() else "py-spy",
                "record",
                "--nonblocking",
                "-d",
                str(PROFILE["seconds"]),
                "-o",
                str(out),
                "--pid",
                str(pid),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        log(f"profiling {name} (pid {pid}) for {PROFILE['seconds']} s -> {out}")


# --- helper processes and standalone benchmarks ------------------------------------------------


class LineChild:
    """A helper process of a benchmark (a fake provider, a webhook receiver) driven over its
    stdin/stdout one line at a time: ``count`` answers how many requests it got, ``dump PATH``
    writes them as JSON, ``quit`` stops it. Subclasses start ``self.proc``."""

    proc: asyncio.subprocess.Process
    workdir: Path
    dump_prefix = "child"

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def _ask(self, command: str, timeout_s: float = 120) -> str:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((command + "\n").encode())
        await self.proc.stdin.drain()
        return (await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)).decode().strip()

    async def count(self) -> int:
        return int(await self._ask("count"))

    async def dump(self) -> dict:
        path = self.workdir / f"{self.dump_prefix}-{time.time_ns()}.json"
        await self._ask(f"dump {path}")
        return json.loads(path.read_text())

    async def stop(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            try:
                self.proc.stdin.write(b"quit\n")
                await self.proc.stdin.drain()
                await asyncio.wait_for(self.proc.wait(), 10)
            except (TimeoutError, ConnectionError):
                self.proc.kill()
                await self.proc.wait()


def run_standalone(name: str, argv: list[str] | None, args, headline: str, run, markdown) -> int:
    """The ``main`` of a benchmark run on its own (``python -m bench.NAME``): a work directory,
    ``run(workdir, args)`` under ``results[name]``, the machine and its load at the start and the
    end, then ``bench/results/<args.output>.json`` and ``.md`` (``markdown(results)``, also printed)."""
    raise_nofile()
    command = f"python -m bench.{name} " + " ".join(argv if argv is not None else sys.argv[1:])
    results: dict = {"command": command.strip(), "machine": machine()}
    workdir = Path(tempfile.mkdtemp(prefix=f"imbrace-bench-{name}-"))
    started = time.monotonic()
    log(f"bench: {name}, {headline}, work dir {workdir}")
    try:
        results[name] = run(workdir, args)
    finally:
        results["wall_s"] = round(time.monotonic() - started, 1)
    results["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_json(RESULTS / f"{args.output}.json", results)
    (RESULTS / f"{args.output}.md").write_text(markdown(results))
    print(markdown(results))
    shutil.rmtree(workdir, ignore_errors=True)
    return 0
