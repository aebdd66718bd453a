"""Start a node graph as processes without launch_ros (plain venv), and stop it cleanly.

Each NodeSpec becomes ``python -m <module> --ros-args ...`` (:func:`command_for`), started
through this module's ``__main__`` (:func:`child_main`), which ties the node's life to its
parent's: each node runs in a process group of its own (a Ctrl-C in the terminal reaches only the
parent, which stops the graph in order) and gets SIGTERM from the kernel when the parent dies for
any reason — SIGKILL, a crash, a closed terminal (Linux ``PR_SET_PDEATHSIG``) — so no node
outlives the run. Stopping sends SIGINT to every node, waits up to `stop_timeout_s`, then
SIGTERM, then SIGKILL; the result says which were forced. No rclpy import: this is process
supervision only.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from wm_agent.errors import ConfigError
from wm_agent.graph import NodeSpec
from wm_agent.paths import share_dir


@dataclass
class RunningNode:
    spec: NodeSpec
    process: subprocess.Popen[bytes]


@dataclass(frozen=True)
class StopReport:
    name: str
    returncode: int | None
    seconds: float        # from the stop request to exit [s]
    forced: bool          # needed SIGTERM/SIGKILL


PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def command_for(spec: NodeSpec, config_dir: Path | None = None) -> list[str]:
    """The command line that runs `spec` with this interpreter (what ``wm-agent graph`` prints)."""
    cfg = config_dir if config_dir is not None else share_dir() / "config"
    return [sys.executable, "-m", spec.module, *spec.ros_args(cfg)]


def tied_command(command: Sequence[str], parent_pid: int | None = None) -> list[str]:
    """``command`` (``python -m MODULE ARGS``) run through :func:`child_main`, so that it gets
    SIGTERM when the process `parent_pid` (default: this one) dies."""
    python, flag, module, *rest = command
    if flag != "-m":
        raise ConfigError(f"expected `python -m MODULE ...`, got {list(command)[:3]}")
    pid = os.getpid() if parent_pid is None else parent_pid
    return [python, "-m", "wm_agent.launcher", str(pid), module, *rest]


def child_main(argv: Sequence[str]) -> None:
    """``python -m wm_agent.launcher PARENT_PID MODULE ARGS...``: ask the kernel for SIGTERM when
    the parent dies (Linux; elsewhere the process group alone remains), exit at once if it is
    already gone, then run MODULE as ``__main__`` with ARGS."""
    parent, module, *rest = argv
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != int(parent):  # the parent died before the request: nobody will stop us
        raise SystemExit(f"{module}: parent process {parent} is gone; not starting")
    sys.argv = [module, *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


class GraphProcess:
    """A running graph: one OS process per node, in its own process group."""

    def __init__(
        self,
        specs: Sequence[NodeSpec],
        *,
        env: dict[str, str] | None = None,
        log_dir: Path | None = None,
        stdout: IO[bytes] | int | None = None,
    ) -> None:
        self.specs = list(specs)
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")
        self.log_dir = log_dir
        self.stdout = stdout
        self.nodes: list[RunningNode] = []
        self._logs: list[IO[bytes]] = []

    def start(self) -> None:
        for spec in self.specs:
            self.nodes.append(RunningNode(spec, self._spawn(spec)))

    def _spawn(self, spec: NodeSpec) -> subprocess.Popen[bytes]:
        out: IO[bytes] | int | None = self.stdout
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log = open(self.log_dir / f"{spec.name}.log", "ab")  # closed in stop()
            self._logs.append(log)
            out = log
        return subprocess.Popen(
            tied_command(command_for(spec)),
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT if out is not None else None,
            start_new_session=True,
        )

    def node(self, name: str) -> RunningNode:
        """The running node called `name` (KeyError names the known ones)."""
        for n in self.nodes:
            if n.spec.name == name:
                return n
        raise KeyError(f"no node {name!r}; running: {[n.spec.name for n in self.nodes]}")

    def send(self, name: str, sig: signal.Signals) -> None:
        """Send `sig` to one node's process group (fault injection: SIGSTOP, SIGKILL, ...)."""
        _signal(self.node(name).process, sig)

    def restart(self, name: str) -> None:
        """Start node `name` again with the same command line (after it died or was killed)."""
        node = self.node(name)
        if node.process.poll() is None:
            raise RuntimeError(f"node {name!r} is still running (pid {node.process.pid})")
        node.process = self._spawn(node.spec)

    def poll(self) -> list[RunningNode]:
        """Nodes that have exited on their own."""
        return [n for n in self.nodes if n.process.poll() is not None]

    def stop(self, stop_timeout_s: float = 5.0) -> list[StopReport]:
        """SIGINT every node; escalate to SIGTERM then SIGKILL after `stop_timeout_s`."""
        t0 = time.monotonic()
        for node in self.nodes:
            _signal(node.process, signal.SIGINT)
        reports = [_wait(n, t0, stop_timeout_s) for n in self.nodes]
        for log in self._logs:
            log.close()
        return reports

    def __enter__(self) -> GraphProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _signal(proc: subprocess.Popen[bytes], sig: signal.Signals) -> None:
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass


def _wait(node: RunningNode, t0: float, timeout_s: float) -> StopReport:
    proc = node.process
    forced = False
    for sig in (None, signal.SIGTERM, signal.SIGKILL):
        if sig is not None:
            forced = True
            _signal(proc, sig)
        try:
            proc.wait(timeout=max(0.0, timeout_s - (time.monotonic() - t0)) if sig is None else 2.0)
            break
        except subprocess.TimeoutExpired:
            continue
    return StopReport(node.spec.name, proc.returncode, time.monotonic() - t0, forced)


def ros_env(domain_id: int | None = None, base: Iterable[tuple[str, str]] | None = None) -> dict[str, str]:
    """Environment for a self-contained graph: localhost discovery, optional domain id."""
    env = dict(base if base is not None else os.environ.items())
    env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    env.setdefault("RMW_IMPLEMENTATION", "rmw_fastrtps_cpp")
    if domain_id is not None:
        env["ROS_DOMAIN_ID"] = str(domain_id)
    return env


if __name__ == "__main__":
    child_main(sys.argv[1:])
