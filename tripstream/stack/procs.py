"""Detached processes with pid files, port checks and deadlines."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from tripstream.errors import SetupError

# `tripstream up` names a file in this variable for each process it waits for; the process
# writes it once it is ready (the producer watching, the job with every query started).
READY_FILE_ENV = "TRIPSTREAM_READY_FILE"


def mark_ready() -> None:
    if path := os.environ.get(READY_FILE_ENV):
        Path(path).write_text(str(os.getpid()))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        return reaches_a_server(s, host, port)


def reaches_a_server(s: socket.socket, host: str, port: int) -> bool:
    """Connect `s` to (host, port): True if a server answered. Our ports (55432, 59092, the
    tests' free ports) lie in Linux's ephemeral range, so while nothing listens, a connect can
    take the target port as its own and reach itself (a TCP self-connect). That is no server,
    and its TIME_WAIT would keep the server from binding the port for a minute: close it with
    a reset instead (a broker once failed to start so, after its port looked open)."""
    s.settimeout(0.3)
    if s.connect_ex((host, port)) != 0:
        return False
    if s.getsockname() != s.getpeername():
        return True
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return False


def require_free(port: int, what: str, setting: str) -> None:
    if port_open(port):
        raise SetupError(
            f"port {port} for {what} is already taken by another program. "
            f"Try stopping that program, or set {setting} to a free port."
        )


def wait_until(
    check: Callable[[], bool],
    *,
    timeout: float,
    what: str,
    log: Path | None = None,
    interval: float = 0.1,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(interval)
    hint = f" See its log: {log}" if log else ""
    raise SetupError(f"{what} did not become ready within {timeout:.0f}s.{hint}")


def spawn(
    name: str,
    argv: Sequence[str],
    run_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> subprocess.Popen[bytes]:
    """Start argv in its own session, output to run_dir/<name>.log, pid to run_dir/<name>.pid."""
    run_dir.mkdir(parents=True, exist_ok=True)
    log = open(run_dir / f"{name}.log", "ab")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen(  # noqa: S603 - argv is built by us, never from user input
        list(argv),
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        start_new_session=True,
        user=user,
    )
    log.close()
    (run_dir / f"{name}.pid").write_text(str(proc.pid))
    return proc


def read_pid(run_dir: Path, name: str) -> int | None:
    try:
        pid = int((run_dir / f"{name}.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if alive(pid) else None


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
        if state == "Z":
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            return False
    return True


def stop(run_dir: Path, name: str, *, timeout: float = 20.0) -> bool:
    """SIGTERM the process group, SIGKILL after timeout. True if something was running."""
    pid = read_pid(run_dir, name)
    (run_dir / f"{name}.pid").unlink(missing_ok=True)
    if pid is None:
        return False
    terminate(pid, timeout=timeout)
    return True


def terminate(pid: int, *, timeout: float = 20.0) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if alive(pid):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
