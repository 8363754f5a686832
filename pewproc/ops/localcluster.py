"""A throwaway RabbitMQ cluster of local nodes, for the cluster test and `pewproc soak --cluster`.

Each node is a `rabbitmq-server` process of its own: its own node name, AMQP port, distribution
port, data folder and config file (so that no system-wide config moves it onto a port in use),
all in a session of its own so that a SIGKILL of its process group is a node crash. The nodes
share the user's Erlang cookie, join the first node, and are stopped and removed at the end.
It never touches another node: every rabbitmqctl call names its node.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

RABBITMQ_BIN = Path(os.environ.get("PEWPROC_RABBITMQ_BIN", "/usr/lib/rabbitmq/bin"))
START_TIMEOUT = 120.0
POLL = 0.2


class ClusterError(RuntimeError):
    """A node did not start, join or answer."""


def free_port(avoid: set[int]) -> int:
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in avoid and port not in (5672, 25672):
            return port


@dataclass
class Node:
    name: str  # short node name; RabbitMQ appends @host
    port: int
    dist_port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    @property
    def full_name(self) -> str:
        return f"{self.name}@{socket.gethostname().split('.')[0]}"

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "RABBITMQ_NODENAME": self.name,
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.folder / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.folder / "log"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.folder / "enabled_plugins"),
            "RABBITMQ_CONFIG_FILE": str(self.folder / "rabbitmq.conf"),
        }

    def ctl(self, *args: str, timeout: float = 120.0) -> str:
        """rabbitmqctl (or another CLI tool named `tool:`) against this node only."""
        tool = "rabbitmqctl"
        if args and args[0].endswith(":"):
            tool, args = args[0][:-1], args[1:]
        done = subprocess.run([str(RABBITMQ_BIN / tool), "-n", self.full_name, *args],
                              env=self.env(), capture_output=True, timeout=timeout, check=False)
        if done.returncode:
            raise ClusterError(f"{tool} {' '.join(args)} on {self.name}: "
                               f"{(done.stdout + done.stderr).decode(errors='replace')[-800:]}")
        return done.stdout.decode(errors="replace")

    def start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "enabled_plugins").write_text("[].\n")
        (self.folder / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "log.file.level = warning\n"
            "loopback_users = none\n"
        )
        log = (self.folder / "server.out").open("ab")
        self.process = subprocess.Popen([str(RABBITMQ_BIN / "rabbitmq-server")], env=self.env(),
                                        stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)

    def wait_started(self, timeout: float = START_TIMEOUT) -> None:
        """Wait until the node is up. It registers with epmd as its VM starts, and from then
        on `await_startup` can ask it to report once it has booted; before, it fails at once."""
        deadline = time.monotonic() + timeout
        while not self.registered():
            if self.process is not None and self.process.poll() is not None:
                raise ClusterError(f"node {self.name} exited at start: "
                                   f"{(self.folder / 'server.out').read_text()[-800:]}")
            if time.monotonic() > deadline:
                raise ClusterError(f"node {self.name} not registered with epmd in {timeout} s")
            time.sleep(POLL)
        self.ctl("await_startup", "--timeout", str(int(timeout)))

    def registered(self) -> bool:
        names = subprocess.run(["epmd", "-names"], capture_output=True, text=True, timeout=30,
                               check=False).stdout
        return f"name {self.name} at port" in names

    def answers(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False

    def kill(self) -> None:
        """SIGKILL the node's whole process group: a crash, not a shutdown.

        Returns once every process of the group is gone: the Erlang VM dies a moment after
        its launcher script, and epmd forgets its name a moment later still; until then a
        restarted node would be taken for the dead one."""
        if self.process is None:
            return
        group, deadline = self.process.pid, time.monotonic() + 30
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
        self.process.wait(30)
        self.process = None
        while _group_alive(group) or self.registered():  # epmd notices a moment later
            if time.monotonic() > deadline:
                raise ClusterError(f"node {self.name} still running 30 s after SIGKILL")
            time.sleep(POLL)


def _group_alive(group: int) -> bool:
    """Whether any process of the group is still there, zombies apart."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == group and fields[0] != "Z":
                return True
    return False


class LocalCluster:
    """`size` nodes named pewproc-<tag>-<n>, joined into one cluster."""

    def __init__(self, folder: Path, size: int = 3) -> None:
        tag = uuid.uuid4().hex[:6]
        used: set[int] = set()
        self.nodes: list[Node] = []
        for n in range(size):
            port = free_port(used)
            used.add(port)
            dist = free_port(used)
            used.add(dist)
            self.nodes.append(Node(f"pewproc-{tag}-{n}", port, dist, folder / f"node-{n}"))
        self.folder = folder

    @property
    def urls(self) -> str:
        """RABBITMQ_URL for pewproc: every node, in order."""
        return ",".join(node.url for node in self.nodes)

    def start(self) -> None:
        for node in self.nodes:
            node.start()
        for node in self.nodes:
            node.wait_started()
        first = self.nodes[0]
        for node in self.nodes[1:]:
            node.ctl("stop_app")
            node.ctl("join_cluster", first.full_name)
            node.ctl("start_app")
        running = first.ctl("cluster_status", "--formatter", "json")
        missing = [n.full_name for n in self.nodes if n.full_name not in running]
        if missing:
            raise ClusterError(f"nodes not in the cluster: {missing}")

    def restart(self, node: Node) -> None:
        """Start a killed node again on its data: it rejoins the cluster by itself."""
        node.start()
        node.wait_started()

    def alive(self) -> list[Node]:
        return [node for node in self.nodes if node.process is not None and node.answers()]

    def queue_leader(self, queue: str) -> Node:
        """The node holding the leader of a quorum queue."""
        for node in self.alive():
            with contextlib.suppress(ClusterError):
                for line in node.ctl("list_queues", "name", "leader", "--no-table-headers",
                                     "--quiet").splitlines():
                    name, _, leader = line.partition("\t")
                    if name == queue:
                        return next(n for n in self.nodes if n.full_name == leader.strip())
        raise ClusterError(f"no leader found for {queue}")

    def stop(self) -> None:
        for node in self.nodes:
            node.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
