"""The embedded database process: nx-27017's wire-protocol server, run so that it
stops cleanly and never outlives the server that started it.

``python -m api.embedded_db --data-dir DIR --port PORT --parent-pid PID``

Why not the ``nx-27017`` command itself:

- It exits on SIGTERM/SIGINT with ``sys.exit`` from inside its event loop, so
  ``asyncio.run`` cancels the handlers of the connections still open, and
  Python 3.11's stream callback then logs each cancelled handler as an error
  with two tracebacks. Here a signal closes the listener and the client
  connections first; each handler then sees end-of-file and returns normally.
- It knows nothing of its parent. Here the process asks Linux to send it
  SIGTERM when its parent dies (``PR_SET_PDEATHSIG``), and a watchdog thread
  checks the parent pid as well (other systems, or a parent thread that exited).
- Its pid-file check trusts any live process with the recorded pid. Here the
  pid file is held with ``flock`` while the database runs, so the kernel, not a
  pid that may have been reused, says whether the data directory is taken.

It imports nothing from the application, so it starts as fast as nx-27017 does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fcntl
import logging
import os
import signal
import sys
import threading
from pathlib import Path

IN_USE_EXIT_CODE = 3
WATCHDOG_INTERVAL_S = 0.2
CLOSE_TIMEOUT_S = 3
PR_SET_PDEATHSIG = 1

log = logging.getLogger("imbrace.embedded_db")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m api.embedded_db")
    parser.add_argument("--data-dir", required=True, type=Path, help="the imbrace data directory")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--parent-pid", required=True, type=int)
    parser.add_argument(
        "--pdeathsig",
        action="store_true",
        help="die with the parent (Linux); only when the parent's starting thread lives as long",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s - %(name)s - %(levelname)s - [%(process)d] - %(message)s"
    )
    if args.pdeathsig:
        _die_with_parent()
    if os.getppid() != args.parent_pid:  # the parent died before we could watch it
        log.warning("parent pid %d is gone before start-up; not starting", args.parent_pid)
        return 0

    data_dir = args.data_dir.resolve()
    pid_file, port_file = data_dir / "db.pid", data_dir / "db.port"
    lock = os.open(pid_file, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(lock, 32).decode(errors="replace").strip() or "?"
        print(f"the data directory {data_dir} is in use by the embedded database pid {holder}", file=sys.stderr)
        return IN_USE_EXIT_CODE
    try:
        os.ftruncate(lock, 0)
        os.write(lock, str(os.getpid()).encode())
        _serve(data_dir, args.host, args.port, args.parent_pid, port_file)
    finally:
        for path in (port_file, pid_file):
            with contextlib.suppress(OSError):
                path.unlink()
        os.close(lock)
    return 0


def _die_with_parent() -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # the watchdog thread still notices


def _serve(data_dir: Path, host: str, port: int, parent_pid: int, port_file: Path) -> None:
    from nx_27017.handler import NeoSQLiteHandler

    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    handler = NeoSQLiteHandler(data_dir=str(data_dir / "db"))
    try:
        asyncio.run(_run(handler, host, port, parent_pid, port_file))
    finally:
        handler.close_all()


async def _run(handler, host: str, port: int, parent_pid: int, port_file: Path) -> None:
    from nx_27017.server import handle_client

    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    writers: set[asyncio.StreamWriter] = set()
    handlers: set[asyncio.Task] = set()

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writers.add(writer)
        task = asyncio.current_task()
        assert task is not None  # asyncio.start_server runs each client's callback in a task
        handlers.add(task)
        try:
            await handle_client(reader, writer, handler)
        finally:
            writers.discard(writer)
            handlers.discard(asyncio.current_task())

    def stop(reason: str) -> None:
        if not stopping.is_set():
            log.info("stopping: %s", reason)
            stopping.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop, signal.Signals(signum).name)

    def watch_parent() -> None:
        while not stopping.is_set():
            if os.getppid() != parent_pid:
                loop.call_soon_threadsafe(stop, f"parent pid {parent_pid} is gone")
                return
            threading.Event().wait(WATCHDOG_INTERVAL_S)

    threading.Thread(target=watch_parent, name="parent-watchdog", daemon=True).start()
    server = await asyncio.start_server(on_client, host, port)
    port_file.write_text(f"{port}\n")
    log.info("NX-27017 listening on %s:%d, data in %s", host, port, handler.db_path)
    await stopping.wait()

    server.close()
    for writer in list(writers):
        writer.close()  # the handler reads end-of-file and returns
    if handlers:
        done, pending = await asyncio.wait(list(handlers), timeout=CLOSE_TIMEOUT_S)
        if pending:
            log.warning("%d client connection(s) still busy after %d s; stopping anyway", len(pending), CLOSE_TIMEOUT_S)
    log.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
