"""The embedded MongoDB-wire-protocol server used when no MONGODB_URI is set.

``nx-27017`` speaks MongoDB's wire protocol over SQLite. It runs as a child
process on a free loopback port, so the application and the tests talk to it
through the real PyMongo driver exactly as they would to ``mongod``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class EmbeddedMongo:
    def __init__(self, data_dir: Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/?directConnection=true"

    def start(self, timeout_s: float = 20) -> "EmbeddedMongo":
        db_dir = self.data_dir / "db"
        db_dir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [_executable(), "--data-dir", str(db_dir), "--host", "127.0.0.1", "-p", str(self.port),
             "--log-file", str(self.data_dir / "db.log"), "--pid-file", str(self.data_dir / "db.pid")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        self._wait_until_ready(timeout_s)
        return self

    def _wait_until_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        client = MongoClient(self.uri, serverSelectionTimeoutMS=250)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"embedded MongoDB exited with code {self.process.returncode}")
                try:
                    client.admin.command("ping")
                    return
                except PyMongoError:
                    time.sleep(0.05)
        finally:
            client.close()
        self.stop()
        raise RuntimeError("embedded MongoDB did not answer ping in time")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=3)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)

    def kill(self) -> None:
        """Hard stop, as a crash would (fault tests)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=5)


def _executable() -> str:
    found = shutil.which("nx-27017", path=os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    if found is None:
        raise RuntimeError("nx-27017 is not installed (pip install nx-27017)")
    return found
