"""Several application servers behind HAProxy, on one PostgreSQL: the topology a city runs.

Each app server is gunicorn as ``scripts/serve`` runs it (``-c python:wallet.web.gunicorn_conf``),
with its own instance folder and its own copy of the signing keys, sharing only the
PostgreSQL database and Redis. Where the machine allows (root, ``ip netns``), every
server runs in a network namespace of its own, reached over a veth pair from
HAProxy on the host; elsewhere the servers listen on distinct loopback ports.
PostgreSQL and Redis are reached over Unix sockets, which a network namespace
does not hide (Redis through a small relay to its loopback port).

Used by tests/cluster/test_cluster.py and scripts/bench_cluster.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.cluster import haproxy
from wallet.store.db import database_url

ROOT = Path(__file__).resolve().parents[2]
PORT = 8000  # each server's port inside its namespace
# RFC 2544's range for benchmarking network devices: only ever inside our own namespaces.
_NET_PREFIX = "198.18"
PASSPHRASE = "cluster-test-passphrase-" + "x" * 8


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _run(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True, timeout=30)


# -- network namespaces ------------------------------------------------------------


@dataclass
class Namespace:
    """One server's network namespace: ``host_ip`` is HAProxy's end of the veth pair."""

    name: str
    host_link: str
    host_ip: str
    server_ip: str

    def create(self) -> None:
        peer = self.host_link[:-1] + "p"
        _run("ip", "netns", "add", self.name)
        try:
            _run("ip", "link", "add", self.host_link, "type", "veth", "peer", "name", peer)
            _run("ip", "link", "set", peer, "netns", self.name)
            _run("ip", "addr", "add", f"{self.host_ip}/30", "dev", self.host_link)
            _run("ip", "link", "set", self.host_link, "up")
            inside = ("ip", "netns", "exec", self.name, "ip")
            _run(*inside, "addr", "add", f"{self.server_ip}/30", "dev", peer)
            _run(*inside, "link", "set", peer, "up")
            _run(*inside, "link", "set", "lo", "up")
        except (OSError, subprocess.SubprocessError):
            self.delete()
            raise

    def delete(self) -> None:
        # Deleting the namespace deletes its end of the pair, and so the pair.
        subprocess.run(["ip", "netns", "del", self.name], capture_output=True, timeout=30)
        subprocess.run(["ip", "link", "del", self.host_link], capture_output=True, timeout=30)


def remove_stale_namespaces() -> None:
    """Namespaces of an earlier run that was killed before its clean-up (its process is gone)."""
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=30)
    for line in listed.stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if not name.startswith("wallet-cluster-"):
            continue
        pid = name.removeprefix("wallet-cluster-").split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            # Deleting the namespace deletes its end of the veth pair, and so the pair.
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30)


def namespaces_possible() -> tuple[bool, str]:
    """Whether this machine lets us make namespaces and veth pairs; why not if not."""
    if os.geteuid() != 0:
        return False, "not root"
    if shutil.which("ip") is None:
        return False, "no `ip` command (iproute2)"
    probe = Namespace(f"wcprobe{os.getpid() % 100000}", f"wcq{os.getpid() % 100000}h", "", "")
    try:
        _run("ip", "netns", "add", probe.name)
        peer = probe.host_link[:-1] + "p"
        _run("ip", "link", "add", probe.host_link, "type", "veth", "peer", "name", peer)
    except (OSError, subprocess.SubprocessError) as exc:
        return False, f"`ip netns`/veth refused: {exc}"
    finally:
        probe.delete()
    remove_stale_namespaces()
    return True, "network namespaces with veth pairs"


# -- Redis over a Unix socket ------------------------------------------------------


class _RelayHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        upstream = socket.create_connection(("127.0.0.1", 6379), timeout=5)
        upstream.settimeout(None)
        client: socket.socket = self.request

        def pump(source: socket.socket, target: socket.socket) -> None:
            with contextlib.suppress(OSError):
                while data := source.recv(65536):
                    target.sendall(data)
            with contextlib.suppress(OSError):
                target.shutdown(socket.SHUT_WR)

        other = threading.Thread(target=pump, args=(upstream, client), daemon=True)
        other.start()
        pump(client, upstream)
        other.join(10)
        upstream.close()


class _UnixRelay(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def redis_answers() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=1) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@contextlib.contextmanager
def redis_relay(path: Path) -> Iterator[str]:
    """Redis at 127.0.0.1:6379 as a Unix socket every namespace can reach; its URL."""
    server = _UnixRelay(str(path), _RelayHandler)
    os.chmod(path, 0o600)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"redis+unix://{path}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


# -- PostgreSQL ----------------------------------------------------------------------


@contextlib.contextmanager
def fresh_database(admin_url: str) -> Iterator[tuple[str, str]]:
    """A new, empty database; (URL over TCP for this process, URL over the Unix socket)."""
    admin = make_url(database_url(admin_url))
    name = f"wallet_cluster_{uuid.uuid4().hex[:10]}"
    engine = create_engine(admin, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        directories = str(conn.execute(text("SHOW unix_socket_directories")).scalar_one())
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    tcp = admin.set(database=name)
    socket_dir = directories.split(",")[0].strip()
    local = tcp.set(host=None, port=None, query={"host": socket_dir}) if socket_dir else tcp
    try:
        yield (
            tcp.render_as_string(hide_password=False),
            local.render_as_string(hide_password=False),
        )
    finally:
        with engine.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()


# -- processes -----------------------------------------------------------------------


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """kill -9 of the whole process group: the master and its workers at once."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(10)

    def stop(self) -> None:
        """At the end of a test nothing is kept: no graceful stop to wait for."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.kill()  # in case it was not a group leader
        self.popen.wait(10)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def errors(self) -> list[str]:
        """Its log's error lines (tracebacks included), for a failing test's message."""
        return [
            line for line in self.output().splitlines()
            if '"level":"error"' in line or "Traceback" in line
        ]  # fmt: skip


def _spawn(name: str, command: list[str], env: Mapping[str, str], log: Path) -> Process:
    with log.open("wb") as out:
        popen = subprocess.Popen(
            command,
            env=dict(env),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Process(name, popen, log)


# -- the cluster ---------------------------------------------------------------------


@dataclass
class Node:
    name: str
    instance: Path
    keys: Path
    address: str  # host:port HAProxy sends to
    namespace: Namespace | None
    server: Process | None = None

    def prefix(self) -> list[str]:
        return ["ip", "netns", "exec", self.namespace.name] if self.namespace else []


@dataclass
class Cluster:
    folder: Path
    mode: str  # what kind of network the servers are on, said in the test output
    env: dict[str, str]  # shared by every node and worker
    nodes: list[Node]
    https_port: int
    ca_file: Path
    tcp_url: str  # the database, for this process's checks
    admin_token: str = ""
    proxy: Process | None = None
    workers: list[Process] = field(default_factory=list)
    namespaces: list[Namespace] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    def node_env(self, node: Node) -> dict[str, str]:
        return {
            **self.env,
            "WALLET_INSTANCE_DIR": str(node.instance),
            "WALLET_SIGNING_KEYS_DIR": str(node.keys),
            "WALLET_BIND": node.address,
        }

    def wallet(
        self, node: Node, *args: str, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """The admin CLI on a node."""
        command = [str(Path(sys.executable).parent / "wallet"), *args]
        return subprocess.run(
            command, env=self.node_env(node), cwd=ROOT, capture_output=True, text=True,
            timeout=timeout, check=False,
        )  # fmt: skip

    def start_server(self, node: Node) -> None:
        command = [*node.prefix(), sys.executable, "-m", "gunicorn", "-c",
                   "python:wallet.web.gunicorn_conf", "wallet.web.wsgi:app"]  # fmt: skip
        node.server = _spawn(
            f"server {node.name}", command, self.node_env(node), self.folder / f"{node.name}.log"
        )

    def start_worker(self, node: Node, index: int) -> Process:
        command = [str(Path(sys.executable).parent / "wallet"), "worker"]
        worker = _spawn(
            f"worker {index}", command, self.node_env(node), self.folder / f"worker{index}.log"
        )
        self.workers.append(worker)
        return worker

    def start_proxy(self) -> None:
        config = self.folder / "haproxy.cfg"
        certificate = self.folder / "tls" / "wallet.pem"
        site = haproxy.Site(
            https_bind=f"127.0.0.1:{self.https_port}",
            http_bind=f"127.0.0.1:{free_port()}",
            metrics_bind=f"127.0.0.1:{free_port()}",
            certificate=certificate,
            servers=[(n.name, n.address) for n in self.nodes],
            state_dir=self.folder,
            privileged=os.geteuid() == 0,
            log_target="stdout format raw local0",
            maxconn=int(self.env["WALLET_WORKERS"]),
        )
        config.write_text(haproxy.render(site), encoding="utf-8")
        checked = haproxy.check(config)
        if checked.returncode != 0:
            raise RuntimeError(
                f"haproxy -c refused the configuration:\n{checked.stdout}{checked.stderr}"
            )
        self.proxy = Process(
            "haproxy",
            haproxy.start(config, self.folder / "haproxy.log"),
            self.folder / "haproxy.log",
        )

    def server_states(self) -> dict[str, str]:
        """HAProxy's view of each server (UP, DOWN, ...), from its admin socket."""
        with socket.socket(socket.AF_UNIX) as conn:
            conn.settimeout(5)
            conn.connect(str(self.folder / "admin.sock"))
            conn.sendall(b"show stat\n")
            data = b""
            while chunk := conn.recv(65536):
                data += chunk
        states = {}
        lines = data.decode().splitlines()
        header = lines[0].lstrip("# ").split(",")
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "wallet_servers" and row.get("svname") not in ("BACKEND", None):
                states[row["svname"]] = row["status"]
        return states

    def wait_all_up(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        states: dict[str, str] = {}
        while time.monotonic() < deadline:
            for process in [*(n.server for n in self.nodes if n.server), *self.workers]:
                if not process.alive():
                    raise RuntimeError(f"{process.name} stopped at start:\n{process.output()}")
            with contextlib.suppress(OSError, IndexError):
                states = self.server_states()
                if states and all(s == "UP" for s in states.values()):
                    return
            time.sleep(0.2)
        logs = "\n".join(n.server.output()[-2000:] for n in self.nodes if n.server)
        raise RuntimeError(f"not every server became ready: {states}\n{logs}")

    def fetch_from(self, node: Node, path: str) -> tuple[int, dict[str, str], bytes]:
        """GET from one server directly, from inside its namespace (this process only
        ever connects to loopback)."""
        script = (
            "import base64, json, sys, urllib.request, urllib.error\n"
            "try:\n"
            "    r = urllib.request.urlopen(sys.argv[1], timeout=10)\n"
            "except urllib.error.HTTPError as e:\n"
            "    r = e\n"
            "print(json.dumps({'status': r.status, 'headers': dict(r.headers),"
            " 'body': base64.b64encode(r.read()).decode()}))\n"
        )
        done = subprocess.run(
            [*node.prefix(), sys.executable, "-c", script, f"http://{node.address}{path}"],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        answer = json.loads(done.stdout)
        import base64

        return answer["status"], answer["headers"], base64.b64decode(answer["body"])

    def stop(self) -> None:
        for process in [self.proxy, *self.workers, *(n.server for n in self.nodes)]:
            if process is not None:
                with contextlib.suppress(Exception):
                    process.stop()
        for namespace in self.namespaces:
            namespace.delete()


@contextlib.contextmanager
def cluster(
    folder: Path,
    *,
    admin_url: str,
    nodes: int,
    extra_env: Mapping[str, str] | None = None,
    workers_per_server: int = 2,
    use_namespaces: bool = True,
) -> Iterator[Cluster]:
    """Start the database, ``nodes`` app servers and HAProxy (workers: the caller's)."""
    if not haproxy.available():
        raise RuntimeError("HAProxy is not installed (scripts/test installs it: ensure_haproxy)")
    possible, why = namespaces_possible() if use_namespaces else (False, "not asked for")
    mode = why if possible else f"distinct loopback ports ({why})"
    folder.mkdir(parents=True, exist_ok=True)
    certificate, ca_file = haproxy.write_certificate(folder / "tls")
    del certificate
    with contextlib.ExitStack() as stack:
        tcp_url, local_url = stack.enter_context(fresh_database(admin_url))
        env = {k: v for k, v in os.environ.items() if not k.startswith("WALLET_")}
        https_port = free_port()
        env.update(
            WALLET_DATABASE_URL=local_url,
            WALLET_KEY_PASSPHRASE=PASSPHRASE,
            WALLET_SECRET_KEY=secrets.token_hex(32),  # the same on every node
            WALLET_PUBLIC_URL=f"https://127.0.0.1:{https_port}",
            WALLET_WORKERS=str(workers_per_server),
            WALLET_TRUSTED_PROXIES="1",
            WALLET_FORWARDED_ALLOW_IPS="127.0.0.1",
            **(extra_env or {}),
        )
        if redis_answers():
            env["WALLET_REDIS_URL"] = stack.enter_context(redis_relay(folder / "redis.sock"))
        block = os.getpid() % 250
        node_list = []
        for i in range(1, nodes + 1):
            namespace = None
            if possible:
                namespace = Namespace(
                    name=f"wallet-cluster-{os.getpid()}-{i}",
                    host_link=f"wc{os.getpid() % 100000}{i}h",  # at most 15 characters
                    host_ip=f"{_NET_PREFIX}.{block}.{4 * i + 1}",
                    server_ip=f"{_NET_PREFIX}.{block}.{4 * i + 2}",
                )
                address = f"{namespace.server_ip}:{PORT}"
            else:
                address = f"127.0.0.1:{free_port()}"
            instance = folder / f"web{i}" / "instance"
            instance.mkdir(parents=True, mode=0o700)
            node_list.append(
                Node(f"web{i}", instance, folder / f"web{i}" / "keys", address, namespace)
            )
        the = Cluster(folder, mode, env, node_list, https_port, ca_file, tcp_url)
        stack.callback(the.stop)
        for node in node_list:
            if node.namespace is not None:
                node.namespace.create()
                the.namespaces.append(node.namespace)
        if possible:
            the.env["WALLET_FORWARDED_ALLOW_IPS"] = ",".join(
                n.namespace.host_ip for n in node_list if n.namespace
            )
        # `wallet setup` once: it migrates the shared database and makes the keys,
        # which every other node gets a copy of, as an administrator copies them.
        first = node_list[0]
        setup = the.wallet(first, "setup")
        if setup.returncode != 0:
            raise RuntimeError(f"wallet setup failed:\n{setup.stdout}{setup.stderr}")
        the.admin_token = next(
            line.strip() for line in setup.stdout.splitlines() if line.strip().startswith("wpt_")
        )
        for node in node_list[1:]:
            shutil.copytree(first.keys, node.keys)
        yield the
