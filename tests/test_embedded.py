"""The embedded database process on its own: how it stops, and what a crash leaves behind."""

import fcntl
import os
import subprocess
from pathlib import Path

import pytest
from pymongo import MongoClient

from api.embedded import DataDirInUse, EmbeddedMongo


def test_stopping_with_clients_connected_leaves_no_traceback_and_no_state_files(tmp_path):
    db = EmbeddedMongo(tmp_path).start()
    client = MongoClient(db.uri, maxPoolSize=4)
    try:
        client.t.things.insert_many([{"n": i} for i in range(3)])
        assert (tmp_path / "db.port").read_text().strip() == str(db.port)
        db.stop()  # while the client's connections are open
    finally:
        db.stop()
        client.close()
    assert db.process.returncode == 0
    log = (tmp_path / "db.log").read_text()
    assert "Traceback" not in log and "ERROR" not in log, log[-3000:]
    assert not (tmp_path / "db.pid").exists() and not (tmp_path / "db.port").exists()

    again = EmbeddedMongo(tmp_path).start()
    try:
        assert MongoClient(again.uri).t.things.count_documents({}) == 3
    finally:
        again.stop()


def test_a_live_database_is_shared_not_duplicated(tmp_path):
    db = EmbeddedMongo(tmp_path).start()
    try:
        shared = EmbeddedMongo(tmp_path).start(share=True)
        assert shared.port == db.port and shared.process is None
        assert shared.shared_with.server_pid == os.getpid()
        shared.stop()  # leaves the owner's database alone
        assert db.process.poll() is None
    finally:
        db.stop()


def test_a_pid_file_naming_another_program_is_stale(tmp_path):
    stranger = subprocess.Popen(["sleep", "60"])
    try:
        (tmp_path / "db.pid").write_text(f"{stranger.pid}\n")
        (tmp_path / "db.port").write_text("1\n")
        assert EmbeddedMongo(Path(tmp_path)).holder() is None
        assert not (tmp_path / "db.pid").exists() and not (tmp_path / "db.port").exists()
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_a_locked_pid_file_of_an_invisible_process_is_respected(tmp_path):
    """Another container on the same volume: its pid means nothing here, but its lock does."""
    gone = subprocess.Popen(["true"])
    gone.wait()
    pid_file = tmp_path / "db.pid"
    pid_file.write_text(f"{gone.pid}\n")
    with open(pid_file) as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        with pytest.raises(DataDirInUse, match="not visible from here"):
            EmbeddedMongo(tmp_path).start(share=True)
        assert pid_file.read_text().strip() == str(gone.pid)
    assert EmbeddedMongo(tmp_path).holder() is None  # once the lock is released, the file is stale
