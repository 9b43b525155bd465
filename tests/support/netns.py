"""Test hosts on one machine: network namespaces joined to the machine by veth pairs.

    with Network(3) as net:                       # three hosts, needs root and iproute2
        port = net.forward(5432)                  # socat: gateway:port -> 127.0.0.1:5432
        proc = net.hosts[0].spawn(["redis-cli", "-h", net.gateway, "ping"], log=path)
        net.cut(net.hosts[1]); net.restore(net.hosts[1])

Each run picks a token; its namespaces are `zipscore-<token>-<pid>-<n>`, its interfaces
`zs<token>b` (a bridge on the machine holding the gateway address) and `zs<token>h<n>` /
`zs<token>n<n>` (the two ends of host n's veth pair), its addresses a private /24 of
10.0.0.0/8 derived from the token and checked against the machine's own routes. A host
reaches the machine (and so a server bound to the gateway address) and nothing else: the
machine does not forward.

Cleanup always runs: `close()` (the `with` block's exit, also on an exception or Ctrl-C,
and on SIGTERM, which is turned into KeyboardInterrupt while the block runs) stops every
process the network started, kills whatever else still runs in its namespaces, deletes the
namespaces (which deletes their veth pairs) and the bridge. A run killed with SIGKILL
cannot clean up: the next `Network` sweeps what such runs left (`sweep_stale`), recognised
by the dead pid in the namespace's name and by ZIPSCORE_NETNS_RUN in processes' environment.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import IO, Any

logger = logging.getLogger(__name__)

IP = shutil.which("ip") or "/usr/sbin/ip"
RUN_VARIABLE = "ZIPSCORE_NETNS_RUN"
_NAMESPACE = re.compile(r"^zipscore-([0-9a-f]{6})-(\d+)-(\d+)$")


class NetnsUnavailable(RuntimeError):
    """This machine (or user) cannot create network namespaces."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([IP, *args], capture_output=True, text=True, timeout=30, check=False)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def available() -> str | None:
    """None when namespaces can be made here; otherwise the reason they cannot."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    if not Path(IP).exists():
        return "iproute2's `ip` is not installed"
    return None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _namespaces() -> list[str]:
    listing = _ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in listing.splitlines() if line.strip()]


def _namespace_pids(namespace: str) -> list[int]:
    out = _ip("netns", "pids", namespace, check=False).stdout
    return [int(pid) for pid in out.split() if pid.isdigit()]


def _processes_of_run(token: str) -> list[int]:
    """Processes whose environment carries this run's token (started by its Network)."""
    marker = f"{RUN_VARIABLE}={token}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if marker in (entry / "environ").read_bytes().split(b"\0"):
                found.append(int(entry.name))
    return found


def _kill_all(pids: Sequence[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def sweep_stale() -> list[str]:
    """Remove what runs killed with SIGKILL left behind; the namespaces removed."""
    removed = []
    for namespace in _namespaces():
        match = _NAMESPACE.match(namespace)
        if match is None or _pid_alive(int(match.group(2))):
            continue
        token = match.group(1)
        _kill_all(_namespace_pids(namespace) + _processes_of_run(token))
        _ip("netns", "delete", namespace, check=False)
        # The kernel drops a namespace's veth pairs only once the namespace is gone, later:
        # delete the host ends now, so nothing of the run is left when this returns.
        links = _ip("-o", "link", "show", check=False).stdout
        for link in sorted(set(re.findall(rf"\b(zs{token}\w+)[@:]", links))):
            _ip("link", "delete", link, check=False)
        removed.append(namespace)
    return removed


def _taken_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    taken: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    for line in _ip("-4", "route", "show", "table", "all", check=False).stdout.splitlines():
        word = line.split()[0] if line.split() else ""
        if word in {"broadcast", "local", "unicast"} and len(line.split()) > 1:
            word = line.split()[1]
        with contextlib.suppress(ValueError):
            if word != "default":
                taken.append(ipaddress.ip_network(word, strict=False))
    for line in _ip("-4", "-o", "addr", "show", check=False).stdout.splitlines():
        parts = line.split()
        if "inet" in parts:
            taken.append(ipaddress.ip_interface(parts[parts.index("inet") + 1]).network)
    return taken


def pick_subnet(token: str) -> ipaddress.IPv4Network:
    """A /24 in 10.128.0.0/9 derived from `token`, overlapping no route or address here."""
    taken = _taken_networks()
    seed = int(token, 16)
    for step in range(4096):
        index = (seed + step * 7919) % (1 << 15)
        subnet = ipaddress.IPv4Network((0x0A800000 + (index << 8), 24))
        if not any(subnet.overlaps(other) for other in taken):
            return subnet
    raise NetnsUnavailable("no free private /24 in 10.128.0.0/9")


def free_port(address: str) -> int:
    """A TCP port nobody listens on at `address` at the moment."""
    with socket.socket() as probe:
        probe.bind((address, 0))
        return int(probe.getsockname()[1])


class Host:
    """One test host: a namespace with one interface, `address`, on the network's bridge."""

    def __init__(self, network: Network, index: int) -> None:
        self.network = network
        self.index = index
        self.namespace = f"zipscore-{network.token}-{os.getpid()}-{index}"
        self.outer = f"zs{network.token}h{index}"  # the machine's end of the veth pair
        self.inner = f"zs{network.token}n{index}"  # the host's end
        self.address = str(network.subnet.network_address + 2 + index)

    def spawn(
        self,
        argv: Sequence[str],
        *,
        log: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `argv` inside this host (`ip netns exec`), stopped by the network's close."""
        return self.network.spawn(argv, log=log, env=env, cwd=cwd, host=self)

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 60,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run `argv` inside this host to its end; its output as text."""
        return subprocess.run(
            [IP, "netns", "exec", self.namespace, *argv],
            capture_output=True, text=True, timeout=timeout, check=False, cwd=cwd,
            env=self.network.environment(env),
        )  # fmt: skip


class Network:
    """`hosts` test hosts on a bridge whose machine-side address is `gateway`."""

    def __init__(self, hosts: int, token: str | None = None) -> None:
        reason = available()
        if reason is not None:
            raise NetnsUnavailable(reason)
        self.token = token or secrets.token_hex(3)
        self.bridge = f"zs{self.token}b"
        self.subnet = pick_subnet(self.token)
        self.gateway = str(self.subnet.network_address + 1)
        self.hosts = [Host(self, index) for index in range(hosts)]
        self.processes: list[subprocess.Popen[bytes]] = []
        self._closed = False
        self._previous_handler: Any = None

    # -- life cycle ---------------------------------------------------------------------

    def __enter__(self) -> Network:
        self._catch_sigterm()
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        sweep_stale()
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.gateway}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for host in self.hosts:
            _ip("netns", "add", host.namespace)
            _ip("link", "add", host.outer, "type", "veth", "peer", "name", host.inner)
            _ip("link", "set", host.inner, "netns", host.namespace)
            _ip("link", "set", host.outer, "master", self.bridge)
            _ip("link", "set", host.outer, "up")
            inside = ("-n", host.namespace)
            _ip(*inside, "addr", "add", f"{host.address}/24", "dev", host.inner)
            _ip(*inside, "link", "set", host.inner, "up")
            _ip(*inside, "link", "set", "lo", "up")
        for host in self.hosts:  # the bridge forwards once its ports have settled
            self._wait_reachable(host)

    def _wait_reachable(self, host: Host, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        with socket.socket() as listener:
            listener.bind((self.gateway, 0))
            listener.listen()
            port = listener.getsockname()[1]
            probe = f"import socket; socket.create_connection(({self.gateway!r}, {port}), 1)"
            while host.run(["python3", "-c", probe], timeout=5).returncode != 0:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{host.namespace} cannot reach {self.gateway}")
                time.sleep(0.1)

    def close(self) -> None:
        """Stop every process, delete namespaces and bridge; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        try:
            for process in reversed(self.processes):
                _stop(process)
            for host in self.hosts:
                _kill_all(_namespace_pids(host.namespace))  # SIGKILL ends stopped ones too
            _kill_all(_processes_of_run(self.token))
            for host in self.hosts:
                _ip("netns", "delete", host.namespace, check=False)
                _ip("link", "delete", host.outer, check=False)
            _ip("link", "delete", self.bridge, check=False)
        finally:
            self._release_sigterm()

    def leftovers(self) -> list[str]:
        """Namespaces, interfaces and processes of this network that still exist."""
        left = [name for name in _namespaces() if name.startswith(f"zipscore-{self.token}-")]
        links = _ip("-o", "link", "show", check=False).stdout
        left += re.findall(rf"\b(zs{self.token}\w+)[@:]", links)
        left += [f"pid {pid}" for pid in _processes_of_run(self.token)]
        return left

    def _catch_sigterm(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return

        def interrupt(signum: int, frame: FrameType | None) -> None:
            raise KeyboardInterrupt(f"signal {signum}")

        self._previous_handler = signal.signal(signal.SIGTERM, interrupt)

    def _release_sigterm(self) -> None:
        if self._previous_handler is not None:
            signal.signal(signal.SIGTERM, self._previous_handler)
            self._previous_handler = None

    # -- processes ------------------------------------------------------------------------

    def environment(self, env: Mapping[str, str] | None) -> dict[str, str]:
        return {**(os.environ if env is None else env), RUN_VARIABLE: self.token}

    def spawn(
        self,
        argv: Sequence[str],
        *,
        log: Path | None = None,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        host: Host | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start `argv` on `host` (the machine itself when None) in a session of its own."""
        prefix = [IP, "netns", "exec", host.namespace] if host is not None else []
        sink: IO[bytes] | int = subprocess.DEVNULL
        with contextlib.ExitStack() as stack:
            if log is not None:
                sink = stack.enter_context(log.open("ab"))
            process = subprocess.Popen(
                [*prefix, *argv], stdout=sink, stderr=subprocess.STDOUT, cwd=cwd,
                env=self.environment(env), start_new_session=True,
            )  # fmt: skip
        self.processes.append(process)
        return process

    def forward(self, port: int, target: str = "127.0.0.1") -> int:
        """Relay gateway:<free port> to target:port (socat); the gateway port."""
        socat = shutil.which("socat")
        if socat is None:
            raise NetnsUnavailable("socat is not installed (make test-tools)")
        listen = free_port(self.gateway)
        self.spawn(
            [socat, f"TCP-LISTEN:{listen},bind={self.gateway},reuseaddr,fork",
             f"TCP:{target}:{port}"]
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection((self.gateway, listen), 1):
                return listen
            if time.monotonic() > deadline:
                raise RuntimeError(f"socat did not listen on {self.gateway}:{listen}")
            time.sleep(0.05)

    # -- faults ---------------------------------------------------------------------------

    def cut(self, host: Host) -> None:
        """Take the host's link down: its packets go nowhere, its connections hang."""
        _ip("link", "set", host.outer, "down")

    def freeze(self, host: Host, keep: Sequence[int] = ()) -> None:
        """SIGSTOP every process on the host but those in `keep` (close() still ends them)."""
        for pid in _namespace_pids(host.namespace):
            if pid not in keep:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)

    def thaw(self, host: Host) -> None:
        for pid in _namespace_pids(host.namespace):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)

    def restore(self, host: Host, wait: bool = True) -> None:
        """Bring the host's link back; with `wait`, until it reaches the gateway again."""
        _ip("link", "set", host.outer, "up")
        if wait:
            self._wait_reachable(host)


def _stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process's session, SIGKILL it after 5 s (or at once if it is stopped)."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGTERM)
            os.killpg(process.pid, signal.SIGCONT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(5)


@contextlib.contextmanager
def network(hosts: int) -> Iterator[Network]:
    """`with network(3) as net:` — the same as `with Network(3) as net:`."""
    with Network(hosts) as net:
        yield net
