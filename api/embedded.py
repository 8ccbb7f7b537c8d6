"""The embedded MongoDB-wire-protocol server used when no MONGODB_URI is set.

``nx-27017`` speaks MongoDB's wire protocol over SQLite. It runs as a child
process (``api.embedded_db``) on a free loopback port, so the application and
the tests talk to it through the real PyMongo driver exactly as they would to
``mongod``.

One database process owns a data directory at a time. Its pid is in ``db.pid``
and its port in ``db.port``; it stops by itself when the process that started it
dies. Before starting one, :meth:`EmbeddedMongo.start` looks at what those files
say: files left by a crash are removed, a database whose server is dead is
stopped, and a database whose server is alive is either shared (``imbrace
init``) or refused with :class:`DataDirInUse` (a second ``imbrace serve``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo import MongoClient
from pymongo.errors import PyMongoError

import api
from api.embedded_db import IN_USE_EXIT_CODE

STOP_TIMEOUT_S = 5


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Holder:
    """The database process that owns a data directory, and the process that started it."""

    db_pid: int
    port: int | None
    server_pid: int | None  # None: not visible from this process
    server_command: str = ""
    orphan: bool = False  # its server is dead


class DataDirInUse(RuntimeError):
    def __init__(self, data_dir: Path, holder: Holder) -> None:
        self.data_dir = data_dir
        self.holder = holder
        if holder.server_pid is None:
            super().__init__(
                f"the data directory {data_dir} is in use by the embedded database pid {holder.db_pid} "
                f"of a process not visible from here (another container?)"
            )
            return
        command = f" ({holder.server_command})" if holder.server_command else ""
        port = f" on port {holder.port}" if holder.port else ""
        super().__init__(
            f"the data directory {data_dir} is in use by another imbrace process: "
            f"pid {holder.server_pid}{command}, whose embedded database is pid {holder.db_pid}{port}"
        )


class EmbeddedMongo:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None
        self.shared_with: Holder | None = None  # set when using another process's database

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, timeout_s: float = 20, share: bool = False) -> EmbeddedMongo:
        """Starts the database on the data directory, or with ``share`` uses the one a live
        server already runs there. Raises :class:`DataDirInUse` when a live server holds it."""
        holder = self.holder()
        if holder is not None and holder.orphan:
            _terminate(holder.db_pid)
            _remove_state_files(self.data_dir)
        elif holder is not None:
            if not share or holder.server_pid is None or holder.port is None:
                raise DataDirInUse(self.data_dir, holder)
            self.port, self.shared_with = holder.port, holder
            self._wait_until_ready(timeout_s)
            return self
        (self.data_dir / "db").mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "api.embedded_db",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            "--parent-pid",
            str(os.getpid()),
        ]
        if threading.current_thread() is threading.main_thread():
            # PR_SET_PDEATHSIG fires when the starting *thread* ends; elsewhere the watchdog alone watches
            command.append("--pdeathsig")
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(Path(api.__file__).parent.parent), os.environ.get("PYTHONPATH")) if p
            ),
        }
        with open(self.data_dir / "db.log", "ab") as db_log:
            # its own session: a Ctrl-C in the terminal reaches the server, which stops the database in order
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=db_log, stderr=db_log, env=env, start_new_session=True
            )
        self._wait_until_ready(timeout_s)
        return self

    def holder(self) -> Holder | None:
        """Who holds the data directory now; forgets the pid and port files a crash left behind.

        The database process keeps ``db.pid`` locked, so a held lock is trusted even when
        the process can't be seen (another container sharing the volume)."""
        pid_file = self.data_dir / "db.pid"
        pid = _read_int(pid_file)
        if pid is None:
            return None
        locked = _locked(pid_file)
        process = _process(pid)
        port = _read_int(self.data_dir / "db.port")
        if process is None or not _serves_data_dir(process, self.data_dir):
            if locked:
                return Holder(pid, port, None)
            _remove_state_files(self.data_dir)
            return None
        parent = _option(process.argv, "--parent-pid")
        server_pid = int(parent) if parent and parent.isdigit() else process.ppid
        server = _process(server_pid) if server_pid > 1 and process.ppid == server_pid else None
        if port is None and (option := _option(process.argv, "--port") or _option(process.argv, "-p")):
            port = int(option) if option.isdigit() else None
        if server is None:
            return Holder(pid, port, None, orphan=True)
        command = " ".join([Path(server.argv[0]).name, *server.argv[1:]] if server.argv else [])
        return Holder(pid, port, server_pid, " ".join(command.split())[:200])

    def _wait_until_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        client: MongoClient[dict[str, Any]] = MongoClient(self.uri, serverSelectionTimeoutMS=250)
        try:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    self._failed_to_start()
                try:
                    client.admin.command("ping")
                    return
                except PyMongoError:
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise RuntimeError(f"embedded MongoDB did not answer ping in time; see {self.data_dir / 'db.log'}")

    def _failed_to_start(self) -> None:
        assert self.process is not None  # called once the started process has exited
        if self.process.returncode == IN_USE_EXIT_CODE and (holder := self.holder()) is not None:
            raise DataDirInUse(self.data_dir, holder)  # another server won a race to start
        raise RuntimeError(
            f"embedded MongoDB exited with code {self.process.returncode}: "
            f"{_last_line(self.data_dir / 'db.log')} (see {self.data_dir / 'db.log'})"
        )

    def stop(self) -> None:
        """SIGTERM, which the database answers by closing its connections and files; SIGKILL if it hangs."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def kill(self) -> None:
        """Hard stop, as a crash would (fault tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


@dataclass(frozen=True)
class _Process:
    ppid: int
    argv: list[str]
    cwd: str | None


def _process(pid: int) -> _Process | None:
    """The live (not zombie) process ``pid``: from /proc on Linux, else from ``ps``."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv = [a.decode(errors="replace") for a in cmdline.read().split(b"\0") if a]
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = None
        return None if fields[0] in ("Z", "X") else _Process(int(fields[1]), argv, cwd)
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            return None
    except (OSError, IndexError, ValueError):
        return None
    try:
        out = subprocess.run(
            ["ps", "-o", "ppid=,stat=,command=", "-p", str(pid)], capture_output=True, text=True, timeout=5
        ).stdout.split(None, 2)
    except (OSError, subprocess.SubprocessError):
        return None
    if len(out) < 3 or out[1].startswith("Z"):
        return None
    return _Process(int(out[0]), out[2].split(), None)


def _serves_data_dir(process: _Process, data_dir: Path) -> bool:
    """Whether ``process`` is an embedded database of ``data_dir`` (also one that nx-27017's
    own command runs, as earlier versions started it), not a process that reused its pid."""
    argv = process.argv
    if "api.embedded_db" in argv:
        target = _option(argv, "--data-dir")
        expected = data_dir
    elif any(Path(a).name in ("nx-27017", "nx_27017") for a in argv[:2]):
        target = _option(argv, "--data-dir")
        expected = data_dir / "db"
    else:
        return False
    if target is None:
        return False
    path = Path(target)
    if not path.is_absolute():
        if process.cwd is None:
            return False
        path = Path(process.cwd) / path
    return os.path.normpath(path) == os.path.normpath(expected)


def _locked(pid_file: Path) -> bool:
    """Whether a database process holds its lock on ``pid_file`` (nx-27017's own command takes none)."""
    try:
        fd = os.open(pid_file, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also releases a lock just taken
    return False


def _option(argv: list[str], name: str) -> str | None:
    for i, arg in enumerate(argv[:-1]):
        if arg == name:
            return argv[i + 1]
    return None


def _terminate(pid: int) -> None:
    """Stops an orphaned database: SIGTERM, then SIGKILL if it is still there after a while."""
    for signum, wait_s in ((signal.SIGTERM, STOP_TIMEOUT_S), (signal.SIGKILL, 5)):
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if _process(pid) is None:
                return
            time.sleep(0.05)


def _remove_state_files(data_dir: Path) -> None:
    for name in ("db.pid", "db.port"):
        with contextlib.suppress(OSError):
            (data_dir / name).unlink()


def _read_int(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1].strip() if lines else "no log"
