"""The ``imbrace`` command as an operator uses it: export-schema, init, serve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest

from api.cli import export_schema
from api.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery"


def _env(**values: str) -> dict[str, str]:
    """This process's environment without any database or data settings, plus ``values``."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("MONGODB_URI", "IMBRACE_DATABASE", "IMBRACE_DATA_DIR", "IMBRACE_JWT_SECRET")}
    env.update(values)
    return env


def _imbrace(*args: str, env: dict[str, str], timeout_s: float = 120) -> subprocess.CompletedProcess:
    """Runs ``imbrace`` to completion; if it hangs, fails with its stack (and stops its embedded database)."""
    command = [sys.executable, "-X", "faulthandler", "-m", "api.cli", *args]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
        stdout, stderr = process.communicate()
        pid_file = Path(env.get("IMBRACE_DATA_DIR", ROOT / ".imbrace")) / "db.pid"
        if not env.get("MONGODB_URI") and pid_file.exists() and _alive(int(pid_file.read_text().strip())):
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        raise AssertionError(f"imbrace {args[0]} hung for {timeout_s} s:\n{stderr[-6000:]}")
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_committed_schema_matches_the_code():
    committed = (ROOT / "schema.graphql").read_text()
    assert export_schema().strip() == committed.strip(), (
        "schema.graphql is stale: regenerate it with `imbrace export-schema > schema.graphql`")


def test_init_creates_an_organization_once(mongo_uri, tmp_path):
    env = _env(MONGODB_URI=mongo_uri, IMBRACE_DATABASE="cli" + uuid.uuid4().hex[:12], IMBRACE_DATA_DIR=str(tmp_path))
    args = ("init", "--org", "Acme", "--email", "owner@example.com", "--password", PASSWORD)

    first = _imbrace(*args, env=env)
    assert first.returncode == 0, first.stderr
    assert "Acme" in first.stdout and "owner@example.com" in first.stdout

    again = _imbrace(*args, env=env)
    assert again.returncode == 1
    assert "error: A member with email owner@example.com already exists." in again.stderr


class Serve:
    """``imbrace serve`` as a child process using the embedded database in ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (data_dir.parent / f"serve-{self.port}.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "serve", "--port", str(self.port)],
            env=_env(IMBRACE_DATA_DIR=str(data_dir)), cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT,
        )
        self.db_pid: int | None = None

    def wait_healthy(self, timeout_s: float = 60) -> httpx.Response:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited with {self.process.returncode}: {self._output()}")
            try:
                response = httpx.get(self.url + "/healthz", timeout=2)
                if response.status_code == 200:
                    pid_file = self.data_dir / "db.pid"
                    if pid_file.exists():
                        self.db_pid = int(pid_file.read_text().strip())
                    return response
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"serve did not become healthy: {self._output()}")

    def gql(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.post(self.url + "/graphql", json={"query": query, "variables": variables or {}},
                              headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    def login(self, email: str, password: str = PASSWORD) -> str:
        data = self.gql("mutation($i: LoginInput!) { login(input: $i) { token errors { code message } } }",
                        {"i": {"email": email, "password": password}})
        assert data["login"]["errors"] == [], data
        assert data["login"]["token"]
        return data["login"]["token"]

    def stop(self, timeout_s: float = 30) -> None:
        """SIGTERM, as an operator or a container runtime would; the server stops its database itself."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
                if self.db_pid is not None and _alive(self.db_pid):
                    os.kill(self.db_pid, signal.SIGKILL)
                raise AssertionError(f"imbrace serve did not stop within {timeout_s} s of SIGTERM: "
                                     f"{self._output()}")
        self.log.close()
        if self.db_pid is not None:
            _wait_gone(self.db_pid)

    def _output(self) -> str:
        if not self.log.closed:
            self.log.flush()
        return (self.data_dir.parent / f"serve-{self.port}.log").read_text()[-4000:]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is gone for our purposes
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return True


def _wait_gone(pid: int, timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return
        time.sleep(0.05)
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        cmdline = "?"
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"embedded MongoDB (pid {pid}: {cmdline}) outlived `imbrace serve`")


@pytest.fixture
def serves():
    started: list[Serve] = []

    def start(data_dir: Path) -> Serve:
        serve = Serve(data_dir)
        started.append(serve)
        serve.wait_healthy()
        return serve
    yield start
    for serve in started:
        serve.stop()


def test_embedded_data_dir_survives_restarts(serves, tmp_path):
    data_dir = tmp_path / "data"
    email = "owner@example.com"

    first = serves(data_dir)
    health = first.wait_healthy()
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert first.db_pid is not None, "the embedded database wrote no pid file"
    first.stop()

    created = _imbrace("init", "--org", "Acme", "--email", email, "--password", PASSWORD,
                       env=_env(IMBRACE_DATA_DIR=str(data_dir)))
    assert created.returncode == 0, created.stderr
    assert not (data_dir / "db.pid").exists() or not _alive(int((data_dir / "db.pid").read_text().strip()))

    second = serves(data_dir)
    earlier_token = second.login(email)
    second.stop()

    third = serves(data_dir)
    token = third.login(email)
    assert third.gql("{ me { email } }", token=token) == {"me": {"email": email}}
    # The signing secret lives in the data dir too, so tokens outlive a restart.
    assert third.gql("{ me { email } }", token=earlier_token) == {"me": {"email": email}}
    third.stop()


@pytest.mark.parametrize("values, named", [
    ({"IMBRACE_SOON_AFTER_S": "600", "IMBRACE_OVERDUE_AFTER_S": "300"}, "IMBRACE_SOON_AFTER_S"),
    ({"IMBRACE_OVERDUE_AFTER_S": "0"}, "IMBRACE_OVERDUE_AFTER_S"),
    ({"IMBRACE_SOON_AFTER_S": "-5"}, "IMBRACE_SOON_AFTER_S"),
    ({"IMBRACE_OVERDUE_AFTER_S": "five minutes"}, "IMBRACE_OVERDUE_AFTER_S"),
    ({"IMBRACE_LOGIN_MAX_FAILURES": "3.5"}, "IMBRACE_LOGIN_MAX_FAILURES"),
    ({"IMBRACE_TRUSTED_PROXIES": "10.0.0.0/8, proxy.internal"}, "IMBRACE_TRUSTED_PROXIES"),
])
def test_serve_refuses_bad_settings_in_one_line(tmp_path, values, named):
    """Nothing starts (no database, no port) and the operator reads which setting is wrong."""
    data_dir = tmp_path / "data"
    port = free_port()
    done = _imbrace("serve", "--port", str(port), env=_env(IMBRACE_DATA_DIR=str(data_dir), **values), timeout_s=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], done.stderr
    assert "Traceback" not in done.stderr and not (data_dir / "db.pid").exists()
