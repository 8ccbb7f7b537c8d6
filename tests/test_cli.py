"""The ``imbrace`` command as an operator uses it: export-schema, init, serve."""

from __future__ import annotations

import os
import re
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
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MONGODB_URI", "IMBRACE_DATABASE", "IMBRACE_DATA_DIR", "IMBRACE_JWT_SECRET", "IMBRACE_SECRET_KEY")
    }
    env.update(values)
    return env


def _imbrace(*args: str, env: dict[str, str], timeout_s: float = 120) -> subprocess.CompletedProcess:
    """Runs ``imbrace`` to completion; if it hangs, fails with its stack (and stops its embedded database)."""
    command = [sys.executable, "-X", "faulthandler", "-m", "api.cli", *args]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired as error:
        process.send_signal(signal.SIGABRT)  # faulthandler prints every thread's stack
        stdout, stderr = process.communicate()
        pid_file = Path(env.get("IMBRACE_DATA_DIR", ROOT / ".imbrace")) / "db.pid"
        if not env.get("MONGODB_URI") and pid_file.exists() and _alive(int(pid_file.read_text().strip())):
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        raise AssertionError(f"imbrace {args[0]} hung for {timeout_s} s:\n{stderr[-6000:]}") from error
    return subprocess.CompletedProcess(command, process.returncode, stdout, stderr)


def test_committed_schema_matches_the_code():
    committed = (ROOT / "schema.graphql").read_text()
    assert export_schema().strip() == committed.strip(), (
        "schema.graphql is stale: regenerate it with `imbrace export-schema > schema.graphql`"
    )


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
            env=_env(IMBRACE_DATA_DIR=str(data_dir)),
            cwd=ROOT,
            stdout=self.log,
            stderr=subprocess.STDOUT,
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
        response = httpx.post(
            self.url + "/graphql", json={"query": query, "variables": variables or {}}, headers=headers, timeout=10
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert "errors" not in body, body
        return body["data"]

    def login(self, email: str, password: str = PASSWORD) -> str:
        data = self.gql(
            "mutation($i: LoginInput!) { login(input: $i) { token errors { code message } } }",
            {"i": {"email": email, "password": password}},
        )
        assert data["login"]["errors"] == [], data
        assert data["login"]["token"]
        return data["login"]["token"]

    def stop(self, timeout_s: float = 30) -> None:
        """SIGTERM, as an operator or a container runtime would; the server stops its database itself."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired as error:
                self.process.kill()
                self.process.wait(timeout=5)
                if self.db_pid is not None and _alive(self.db_pid):
                    os.kill(self.db_pid, signal.SIGKILL)
                raise AssertionError(
                    f"imbrace serve did not stop within {timeout_s} s of SIGTERM: {self._output()}"
                ) from error
        self.log.close()
        if self.db_pid is not None:
            _wait_gone(self.db_pid)

    def db_port(self) -> int:
        return int(httpx.URL(self._logged_db_uri()).port)

    def _logged_db_uri(self) -> str:
        self.log.flush()
        log = (self.data_dir.parent / f"serve-{self.port}.log").read_text()
        return re.search(r"embedded MongoDB \(nx-27017\) on (\S+),", log).group(1)

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

    created = _imbrace(
        "init", "--org", "Acme", "--email", email, "--password", PASSWORD, env=_env(IMBRACE_DATA_DIR=str(data_dir))
    )
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


@pytest.mark.parametrize(
    "values, named",
    [
        ({"IMBRACE_SOON_AFTER_S": "600", "IMBRACE_OVERDUE_AFTER_S": "300"}, "IMBRACE_SOON_AFTER_S"),
        ({"IMBRACE_OVERDUE_AFTER_S": "0"}, "IMBRACE_OVERDUE_AFTER_S"),
        ({"IMBRACE_SOON_AFTER_S": "-5"}, "IMBRACE_SOON_AFTER_S"),
        ({"IMBRACE_OVERDUE_AFTER_S": "five minutes"}, "IMBRACE_OVERDUE_AFTER_S"),
        ({"IMBRACE_LOGIN_MAX_FAILURES": "3.5"}, "IMBRACE_LOGIN_MAX_FAILURES"),
        ({"IMBRACE_TRUSTED_PROXIES": "10.0.0.0/8, proxy.internal"}, "IMBRACE_TRUSTED_PROXIES"),
        ({"IMBRACE_SECRET_KEY": "too-short"}, "IMBRACE_SECRET_KEY"),
        ({"IMBRACE_ENV": "production"}, "IMBRACE_SECRET_KEY"),
    ],
)
def test_serve_refuses_bad_settings_in_one_line(tmp_path, values, named):
    """Nothing starts (no database, no port) and the operator reads which setting is wrong."""
    data_dir = tmp_path / "data"
    port = free_port()
    done = _imbrace("serve", "--port", str(port), env=_env(IMBRACE_DATA_DIR=str(data_dir), **values), timeout_s=60)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], done.stderr
    assert "Traceback" not in done.stderr and not (data_dir / "db.pid").exists()


def _kill(pid: int) -> None:
    os.kill(pid, signal.SIGKILL)
    _wait_gone(pid, timeout_s=5)


def _db_log_tracebacks(data_dir: Path) -> int:
    return (data_dir / "db.log").read_text(errors="replace").count("Traceback")


def test_killed_server_takes_its_database_along_and_restarts_at_once(serves, tmp_path):
    data_dir = tmp_path / "data"
    first = serves(data_dir)
    first.process.kill()
    first.process.wait()
    _wait_gone(first.db_pid, timeout_s=3)

    second = serves(data_dir)
    assert second.db_pid != first.db_pid
    assert int((data_dir / "db.port").read_text()) == second.db_port()
    second.stop()
    assert _db_log_tracebacks(data_dir) == 0, (data_dir / "db.log").read_text()[-3000:]
    assert not (data_dir / "db.pid").exists() and not (data_dir / "db.port").exists()


def test_killed_database_is_replaced_when_the_server_restarts(serves, tmp_path):
    data_dir = tmp_path / "data"
    first = serves(data_dir)
    _kill(first.db_pid)
    deadline = time.monotonic() + 10
    while httpx.get(first.url + "/healthz", timeout=5).status_code != 503:
        assert time.monotonic() < deadline, "healthz still 200 after the database was killed"
        time.sleep(0.1)
    first.stop()

    second = serves(data_dir)
    assert second.db_pid != first.db_pid


def test_both_killed_then_restarted_even_when_the_stale_pid_is_reused(serves, tmp_path):
    data_dir = tmp_path / "data"
    first = serves(data_dir)
    first.process.kill()
    _kill(first.db_pid)
    first.process.wait()
    assert (data_dir / "db.pid").exists(), "a SIGKILLed database can't remove its pid file"
    # the recorded pid now belongs to an unrelated process, as after a reboot
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        (data_dir / "db.pid").write_text(str(stranger.pid))
        second = serves(data_dir)
        assert second.db_pid not in (first.db_pid, stranger.pid)
        assert stranger.poll() is None, "an unrelated process holding the stale pid was signalled"
    finally:
        stranger.kill()
        stranger.wait()


def test_orphaned_database_of_a_dead_server_is_stopped_and_replaced(serves, tmp_path):
    """As earlier versions left it: nx-27017 started directly, its server gone, still holding the files."""
    data_dir = tmp_path / "data"
    (data_dir / "db").mkdir(parents=True)
    nx = str(Path(sys.executable).with_name("nx-27017"))
    launcher = subprocess.run(
        [
            "sh",
            "-c",
            '"$0" --data-dir "$1/db" -p "$2" --log-file "$1/db.log" --pid-file "$1/db.pid" >/dev/null 2>&1 & echo $!',
            nx,
            str(data_dir),
            str(free_port()),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    orphan = int(launcher.stdout)
    try:
        deadline = time.monotonic() + 20
        while not (data_dir / "db.pid").exists():
            assert time.monotonic() < deadline, "the orphan never wrote its pid file"
            time.sleep(0.05)
        serve = serves(data_dir)
        _wait_gone(orphan, timeout_s=5)
        assert serve.db_pid != orphan
    finally:
        if _alive(orphan):
            os.kill(orphan, signal.SIGKILL)


def test_second_server_on_a_data_directory_is_refused_in_one_line(serves, tmp_path):
    data_dir = tmp_path / "data"
    first = serves(data_dir)
    second = Serve(data_dir)
    assert second.process.wait(timeout=60) != 0
    output = second._output()
    second.log.close()
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output
    assert "Traceback" not in output
    assert str(data_dir) in errors[0] and f"pid {first.process.pid}" in errors[0], errors[0]
    assert first.wait_healthy().status_code == 200
    assert int((data_dir / "db.pid").read_text()) == first.db_pid


def test_init_while_serving_creates_the_organization_in_the_running_database(serves, tmp_path):
    data_dir = tmp_path / "data"
    email = "owner@example.com"
    serve = serves(data_dir)
    log = serve._output()
    hint = f"IMBRACE_DATA_DIR={data_dir} imbrace init --org NAME --email EMAIL --password PASSWORD"
    assert hint in log, log

    # relative to its own working directory, as an operator in another shell might give it
    relative = os.path.relpath(data_dir, tmp_path)
    created = subprocess.run(
        [sys.executable, "-m", "api.cli", "init", "--org", "Acme", "--email", email, "--password", PASSWORD],
        env=_env(IMBRACE_DATA_DIR=relative, PYTHONPATH=str(ROOT)),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert created.returncode == 0, created.stderr
    assert "Traceback" not in created.stderr
    assert f"in the data directory {data_dir}." in created.stdout
    token = serve.login(email)
    assert serve.gql("{ me { email } }", token=token) == {"me": {"email": email}}
    assert int((data_dir / "db.pid").read_text()) == serve.db_pid, "init replaced the server's database"
