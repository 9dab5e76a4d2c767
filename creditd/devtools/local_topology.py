"""Redis topologies on this machine, from the embedded server binary: a Cluster of N primaries (each
with R replicas) and a Sentinel group (a primary, replicas and three sentinels).

For the tests and the load generator: loopback only, a password on every node and an ACL user for
creditd, AOF on; every process dies with its parent and stop() ends them all. kill_primary (SIGKILL)
and migrate_slot give the failure scenarios something real to survive.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Self

import redis

from creditd.devtools.ports import free_port
from creditd.errors import Unavailable
from creditd.store.embedded import dying_with_parent, find_server_binary

HOST = "127.0.0.1"
CLUSTER_SLOTS = 16384
APP_USER = "creditd"
SERVICE_NAME = "creditd"
NODE_TIMEOUT_MS = 1000
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
MIGRATE_BATCH = 100
MIGRATE_TIMEOUT_MS = 5000


def _wait(condition: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(redis.RedisError, OSError):
            if condition():
                return
        time.sleep(0.05)
    raise Unavailable(f"local topology: {what} not within {timeout_s} s")


class ServerProcess:
    """One valkey/redis server (or sentinel) on a loopback port, with its own directory."""

    def __init__(self, directory: Path, port: int, config: str, arguments: list[str]) -> None:
        self.directory, self.port = directory, port
        self.config, self.arguments = config, arguments
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        config = self.directory / "server.conf"
        config.touch(mode=0o600)
        config.write_text(self.config)
        command = [
            str(find_server_binary()),
            str(config),
            "--bind",
            HOST,
            "--port",
            str(self.port),
            "--dir",
            str(self.directory),
            "--logfile",
            str(self.directory / "server.log"),
            "--daemonize",
            "no",
            *self.arguments,
        ]
        # What the server says before its log file is open (a bad config, say) lands here.
        with (self.directory / "console.log").open("ab") as console:
            self.process = subprocess.Popen(
                dying_with_parent(command), stdin=subprocess.DEVNULL, stdout=console, stderr=console
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def pause(self) -> None:
        """SIGSTOP: the process stops answering without closing anything (a frozen host)."""
        if self.process is not None and self.running:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process is not None and self.running:
            self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        """SIGKILL: no AOF flush, no goodbye to the cluster; what a crash looks like."""
        if self.process is not None and self.running:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGCONT)  # a paused server handles SIGTERM only once continued
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _node_config(password: str, appendfsync: str = "everysec") -> str:
    return (
        f"requirepass {password}\nmasterauth {password}\n"
        f"user {APP_USER} on >{password} ~* &* +@all\n"
        f'appendonly yes\nappendfsync {appendfsync}\nsave ""\nmaxmemory-policy noeviction\n'
    )


class _Topology:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.password = secrets.token_urlsafe(16)
        self.servers: list[ServerProcess] = []

    def admin(self, server: ServerProcess) -> redis.Redis:
        return redis.Redis(HOST, server.port, password=self.password, socket_timeout=2.0)

    def _ask(self, server: ServerProcess, *command: object) -> Any:  # a reply of any shape
        with self.admin(server) as client:
            return client.execute_command(*command)

    def _wait_ready(self, server: ServerProcess) -> None:
        _wait(lambda: self._ask(server, "PING"), READY_TIMEOUT_S, f"server on port {server.port}")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError


class LocalCluster(_Topology):
    def __init__(self, directory: Path, primaries: int = 3, replicas: int = 0) -> None:
        super().__init__(directory)
        self.primary_count, self.replica_count = primaries, replicas
        self.bus_ports: list[int] = []
        for index in range(primaries * (1 + replicas)):
            port, bus_port = free_port(), free_port()
            arguments = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--cluster-port",
                str(bus_port),
                "--cluster-replica-validity-factor",
                "0",
            ]
            self.servers.append(ServerProcess(directory / f"node{index}", port, _node_config(self.password), arguments))
            self.bus_ports.append(bus_port)

    @property
    def url(self) -> str:
        nodes = ",".join(f"{HOST}:{server.port}" for server in self.servers[: self.primary_count])
        return f"redis+cluster://{APP_USER}:{self.password}@{nodes}"

    def node_id(self, server: ServerProcess) -> str:
        return self._text(self._ask(server, "CLUSTER MYID"))

    @staticmethod
    def _text(value: object) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    def start(self) -> None:
        for server in self.servers:
            server.start()
        for server in self.servers:
            self._wait_ready(server)
        primaries = self.servers[: self.primary_count]
        share = CLUSTER_SLOTS // self.primary_count
        for index, server in enumerate(primaries):
            last = CLUSTER_SLOTS - 1 if index == self.primary_count - 1 else (index + 1) * share - 1
            self._ask(server, "CLUSTER ADDSLOTSRANGE", index * share, last)
        for server in self.servers[1:]:
            self._ask(server, "CLUSTER MEET", HOST, self.servers[0].port, self.bus_ports[0])
        for server in self.servers:
            _wait(functools.partial(self._knows_every_node, server), READY_TIMEOUT_S, "cluster meet")
        for index, server in enumerate(self.servers[self.primary_count :]):
            self._ask(server, "CLUSTER REPLICATE", self.node_id(primaries[index % self.primary_count]))
        self.wait_healthy()

    def _known_nodes(self, server: ServerProcess) -> int:
        return int(self._ask(server, "CLUSTER INFO")["cluster_known_nodes"])

    def _knows_every_node(self, server: ServerProcess) -> bool:
        return self._known_nodes(server) == len(self.servers)

    def _state_ok(self, server: ServerProcess) -> bool:
        return bool(self._ask(server, "CLUSTER INFO")["cluster_state"] == "ok")

    def wait_healthy(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Every running node says the cluster is ok, every replica has synced and every primary
        has its replicas; a failure names each node's role, so a topology that did not heal says how."""
        try:
            self._wait_healthy(timeout_s)
        except Unavailable as error:
            raise Unavailable(f"{error}; nodes: {self.describe()}") from error

    def describe(self) -> str:
        return "; ".join(f"{server.port} {self._describe_role(server)}" for server in self.servers)

    def _describe_role(self, server: ServerProcess) -> str:
        if not server.running:
            return f"down (exit status {server.process.returncode if server.process else None})"
        try:
            role = self._ask(server, "ROLE")
        except (redis.RedisError, OSError) as error:
            return f"unreachable ({error})"
        if self._text(role[0]) == "master":
            return f"primary, replicas {[int(port) for _, port, _ in role[2]]}"
        return f"replica of {int(role[2])}, {self._text(role[3])}"

    def _wait_healthy(self, timeout_s: float) -> None:
        for server in self.servers:
            if server.running:
                _wait(functools.partial(self._state_ok, server), timeout_s, f"cluster state ok on {server.port}")
        # Roles are read again at each look, as LocalSentinels.wait_replicas_synced does: a failover
        # during the wait turns a replica into a primary or back.
        _wait(self._replicas_synced, timeout_s, "every replica in sync")
        _wait(self._primaries_have_replicas, timeout_s, f"{self.replica_count} replica(s) connected to each primary")

    def _running_roles(self) -> list[list[Any]]:
        """Each running node's ROLE reply, read once: [b'master', offset, replicas] or
        [b'slave', host, port, link state, offset]."""
        return [self._ask(server, "ROLE") for server in self.servers if server.running]

    def _replicas_synced(self) -> bool:
        roles = self._running_roles()
        return all(self._text(role[3]) == "connected" for role in roles if self._text(role[0]) == "slave")

    def _primaries_have_replicas(self) -> bool:
        roles = self._running_roles()
        return all(len(role[2]) >= self.replica_count for role in roles if self._text(role[0]) == "master")

    def _role(self, server: ServerProcess) -> str:
        return self._text(self._ask(server, "ROLE")[0])

    def primaries(self) -> list[ServerProcess]:
        return [server for server in self.servers if server.running and self._role(server) == "master"]

    def owner_of(self, slot: int) -> ServerProcess:
        primaries = self.primaries()
        for first, last, (_, port, *_node), *_replicas in self._ask(primaries[0], "CLUSTER SLOTS"):
            if first <= slot <= last:
                return next(server for server in primaries if server.port == int(port))
        raise LookupError(f"slot {slot}: no running primary owns it")

    def migrate_slot(self, slot: int, target: ServerProcess) -> int:
        """Moves one slot and its keys to `target`, the way redis-cli --cluster reshard does, while
        clients keep writing (they meet ASK and TRYAGAIN meanwhile, then MOVED); returns keys moved."""
        source = self.owner_of(slot)
        source_id, target_id = self.node_id(source), self.node_id(target)
        self._ask(target, "CLUSTER SETSLOT", slot, "IMPORTING", source_id)
        self._ask(source, "CLUSTER SETSLOT", slot, "MIGRATING", target_id)
        moved = 0
        while keys := self._ask(source, "CLUSTER GETKEYSINSLOT", slot, MIGRATE_BATCH):
            self._ask(
                source, "MIGRATE", HOST, target.port, "", 0, MIGRATE_TIMEOUT_MS, "AUTH", self.password, "KEYS", *keys
            )
            moved += len(keys)
        for server in (target, source, *self.primaries()):
            self._ask(server, "CLUSTER SETSLOT", slot, "NODE", target_id)
        return moved


class LocalServer(_Topology):
    """One server on a loopback TCP port (the embedded one listens on a unix socket only), for tests
    that put something between creditd and Redis, or freeze Redis (SIGSTOP)."""

    def __init__(self, directory: Path, appendfsync: str = "everysec") -> None:
        super().__init__(directory)
        config = _node_config(self.password, appendfsync)
        self.server = ServerProcess(directory / "data", free_port(), config, [])
        self.servers = [self.server]

    def start(self) -> None:
        self.server.start()
        self._wait_ready(self.server)

    def wait_ready(self) -> None:
        self._wait_ready(self.server)

    def url_via(self, port: int) -> str:
        """The URL of this server as reached through `port` (a proxy in front of it)."""
        return f"redis://{APP_USER}:{self.password}@{HOST}:{port}"

    @property
    def url(self) -> str:
        return self.url_via(self.server.port)


class LocalSentinels(_Topology):
    """A primary, `replicas` replicas and three sentinels (quorum 2) watching service 'creditd'."""

    def __init__(self, directory: Path, replicas: int = 1, down_after_ms: int = NODE_TIMEOUT_MS) -> None:
        super().__init__(directory)
        self.data_servers = [
            ServerProcess(directory / f"data{index}", free_port(), _node_config(self.password), [])
            for index in range(1 + replicas)
        ]
        self.sentinels = [
            ServerProcess(directory / f"sentinel{index}", free_port(), "", ["--sentinel"]) for index in range(3)
        ]
        self.down_after_ms = down_after_ms
        self.servers = [*self.data_servers, *self.sentinels]

    @property
    def url(self) -> str:
        nodes = ",".join(f"{HOST}:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{APP_USER}:{self.password}@{nodes}/{SERVICE_NAME}"

    def _sentinel_config(self, primary_port: int) -> str:
        return (
            f"sentinel monitor {SERVICE_NAME} {HOST} {primary_port} 2\n"
            f"sentinel down-after-milliseconds {SERVICE_NAME} {self.down_after_ms}\n"
            f"sentinel failover-timeout {SERVICE_NAME} 10000\n"
            f"sentinel auth-pass {SERVICE_NAME} {self.password}\n"
        )

    def start(self) -> None:
        primary = self.data_servers[0]
        for server in self.data_servers:
            server.start()
        for server in self.data_servers:
            self._wait_ready(server)
        for replica in self.data_servers[1:]:
            self._ask(replica, "REPLICAOF", HOST, primary.port)
        for sentinel in self.sentinels:
            sentinel.config = self._sentinel_config(primary.port)
            sentinel.start()
        for sentinel in self.sentinels:
            _wait(functools.partial(self._sentinel_ready, sentinel), READY_TIMEOUT_S, f"sentinel {sentinel.port}")
        self.wait_replicas_synced()

    def _sentinel_ready(self, sentinel: ServerProcess) -> bool:
        with redis.Redis(HOST, sentinel.port, socket_timeout=2.0) as client:
            replicas = client.execute_command("SENTINEL", "REPLICAS", SERVICE_NAME)
            others = client.execute_command("SENTINEL", "SENTINELS", SERVICE_NAME)
        return len(replicas) == len(self.data_servers) - 1 and len(others) == len(self.sentinels) - 1

    def primary(self) -> ServerProcess:
        """The data server the sentinels currently name as primary."""
        for sentinel in self.sentinels:
            if not sentinel.running:
                continue
            with redis.Redis(HOST, sentinel.port, socket_timeout=2.0) as client:
                _, port = client.execute_command("SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE_NAME)
            return next(server for server in self.data_servers if server.port == int(port))
        raise LookupError("no sentinel running")

    def wait_replicas_synced(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until every running data server but the one the sentinels name as primary is a replica in
        sync. The primary is asked again at each look: under load a second failover may follow the
        first (the new primary missed the sentinels' pings for down_after_ms while being promoted)
        and name the restarted old primary again, with its data from before the kill (creditd's WAIT
        acknowledged a write on the new primary only once the old one had it too)."""
        _wait(self._replicas_connected, timeout_s, "every data server but the primary a replica in sync")

    def _replicas_connected(self) -> bool:
        primary = self.primary()
        return all(
            self._text_role(server) == "connected"
            for server in self.data_servers
            if server.running and server is not primary
        )

    def _text_role(self, server: ServerProcess) -> str:
        role = self._ask(server, "ROLE")
        state = role[3] if role[0] in (b"slave", "slave") else b"primary"
        return state.decode() if isinstance(state, bytes) else str(state)
