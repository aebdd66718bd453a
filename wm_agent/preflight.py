"""What `wm-agent sim` checks before any node starts, with the messages the nodes themselves use.

A run's arguments, scenario (file, YAML, schema, pads for the fleet), fault plan, output folder,
planner backend, model folder (card and file hashes), interface packages and ROS domain are
checked here, in the CLI's process, so that a mistake ends in one line and exit status 2 instead
of six node processes started and a pointer to their logs. Each check calls the code the node
calls (``load_scenario``, ``read_card``/``verify_files``, ``tensorrt_unavailable_reason``, ...),
so the message is the node's. No rclpy import unless the domain has participants to look at.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from wm_agent.errors import ConfigError, ModelError
from wm_agent.graph import NODE_TOPICS, PER_DRONE, FleetSimArgs

#: RTPS well-known ports (DDSI-RTPS 2.2, 9.6.1.1, as Fast DDS uses them): participant p of
#: domain d listens for discovery (metatraffic unicast) on PB + DG * d + D1 + PG * p.
RTPS_PB, RTPS_DG, RTPS_PG, RTPS_D1 = 7400, 250, 2, 10
MAX_DOMAIN_ID = 232
"""Largest ROS_DOMAIN_ID whose RTPS ports fit in 16 bits (ROS 2 recommends 0..101 on Linux)."""
PARTICIPANTS_SCANNED = 120
DISCOVERY_WAIT_S = 3.0
"""How long to listen to a domain that has participants for a publisher of the graph's topics."""
GRAPH_TOPICS = tuple(sorted({t for n in NODE_TOPICS.values() for t in n.publishes
                             if not t.startswith(PER_DRONE)}))
"""Topics only a fleet graph publishes: another publisher of one of them on the run's domain
would cross-talk with it (a second run, a bag replay, a real fleet)."""


@dataclass(frozen=True)
class Checked:
    """The run as the checks resolved it: graph arguments with the scenario's defaults and the
    fidelity filled in; the planning model folder used (None: classical); the ROS domain; the
    run folder (created, empty)."""

    graph: FleetSimArgs
    model: Path | None
    domain_id: int
    run_dir: Path


def check_run(graph: FleetSimArgs, out: Path, domain_id: int | None, duration_s: float,
              faults: bool) -> Checked:
    """Every check, cheapest first; creates the run folder last.

    Raises:
        ConfigError: scenario, arguments, output folder or domain. ModelError: backend or model.
        SetupError: an interface package is missing.
    """
    from wm_agent.faults import FaultPlan

    resolved = graph.resolved()                       # scenario file, YAML, schema, pads
    if faults:
        FaultPlan.for_run(duration_s)
    check_out(out, create=False)
    check_interfaces()
    check_backend(resolved.backend)
    model = check_model(resolved.model) if resolved.backend != "classical" else None
    domain = check_domain(domain_id)
    return Checked(resolved, model, domain, check_out(out, create=True))


def check_out(out: Path, create: bool) -> Path:
    """The run folder: new or empty, and creatable (created when `create`)."""
    run_dir = Path(os.path.abspath(out))
    if run_dir.exists():
        if not run_dir.is_dir():
            raise ConfigError(f"--out {out}: exists and is not a folder; choose a new --out")
        entries = sorted(p.name for p in run_dir.iterdir())
        if entries:
            shown = ", ".join(entries[:4]) + (", …" if len(entries) > 4 else "")
            raise ConfigError(f"--out {out}: the folder is not empty ({shown}); a run needs a "
                              "folder of its own: choose a new --out or empty this one")
    elif not create:
        parent = next(p for p in run_dir.parents if p.exists())
        if not (parent.is_dir() and os.access(parent, os.W_OK | os.X_OK)):
            raise ConfigError(f"--out {out}: cannot create the run folder ({parent} is not a "
                              "writable folder); choose another --out")
    if create:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
            probe = run_dir / ".wm_agent_write_test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as exc:
            raise ConfigError(f"--out {out}: cannot create the run folder ({exc.strerror or exc}); "
                              "choose another --out") from None
    return run_dir


def check_interfaces() -> None:
    """The interface packages the nodes import (SetupError naming the fix)."""
    from wm_agent.interfaces import require_interfaces, require_tf2_msgs

    require_interfaces()
    require_tf2_msgs()


def check_backend(backend: str) -> None:
    """The planner backend can run here (the planner's own check and message; not classical)."""
    if backend != "classical":
        from wm_agent.inference import require_backend

        require_backend(backend, "planner")


def check_model(model: str) -> Path:
    """The planning model folder (default: the shipped one): its card and every file's size and
    SHA-256, as the planner checks them on start."""
    from wm_agent.world_model.artifacts import default_plan_model_dir, read_card, verify_files

    folder = Path(model) if model else default_plan_model_dir()
    if not folder.is_dir():
        raise ModelError(f"--model {model}: no such model folder (a folder with card.json, "
                         "weights.safetensors, …; default: the shipped wm_plan)")
    verify_files(folder, read_card(folder))
    return folder.resolve()


def check_domain(domain_id: int | None) -> int:
    """The run's ROS domain (``--domain-id``, else ROS_DOMAIN_ID, else 0), refused when a node
    of another graph already publishes one of :data:`GRAPH_TOPICS` there (viewers such as RViz
    or a Foxglove bridge, which only subscribe, are welcome)."""
    domain = domain_id if domain_id is not None else int(os.environ.get("ROS_DOMAIN_ID") or 0)
    if not 0 <= domain <= MAX_DOMAIN_ID:
        raise ConfigError(f"--domain-id must be in 0..{MAX_DOMAIN_ID} (RTPS ports), got {domain}")
    if not participants(domain):
        return domain
    found = graph_publishers(domain)
    if found:
        shown = "; ".join(f"{', '.join(nodes)} publish{'es' if len(nodes) == 1 else ''} {topic}"
                          for topic, nodes in sorted(found.items())[:3])
        free = free_domain(exclude=(domain,))
        raise ConfigError(
            f"ROS domain {domain} already has a running graph ({shown}); a second run there "
            f"would cross-talk with it: stop it or choose another --domain-id"
            + (f" (e.g. {free}, which has no participants)" if free is not None else ""))
    return domain


def bound_udp_ports() -> set[int] | None:
    """Local UDP ports bound on this host (Linux /proc/net/udp*); None where unknown."""
    ports: set[int] = set()
    tables = [Path("/proc/net/udp"), Path("/proc/net/udp6")]
    if not any(t.is_file() for t in tables):
        return None
    for table in tables:
        if table.is_file():
            for line in table.read_text().splitlines()[1:]:
                fields = line.split()
                if len(fields) > 1 and ":" in fields[1]:
                    ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def participants(domain: int, ports: set[int] | None = None) -> int:
    """DDS participants of `domain` on this host (their discovery ports bound); where the ports
    cannot be read, 1 (unknown: look at the graph)."""
    bound = bound_udp_ports() if ports is None else ports
    if bound is None:
        return 1
    base = RTPS_PB + RTPS_DG * domain + RTPS_D1
    return sum(base + RTPS_PG * p in bound for p in range(PARTICIPANTS_SCANNED))


def free_domain(exclude: Iterable[int] = (), candidates: Iterable[int] = range(1, 102)) -> int | None:
    """A domain in ROS 2's safe range 1..101 with no participant on this host (None: none)."""
    ports = bound_udp_ports()
    if ports is None:
        return None
    skip = set(exclude)
    return next((d for d in candidates if d not in skip and not participants(d, ports)), None)


def graph_publishers(domain: int, wait_s: float = DISCOVERY_WAIT_S) -> dict[str, list[str]]:
    """Topic of :data:`GRAPH_TOPICS` → the nodes publishing it on `domain`, after listening up
    to `wait_s` for discovery (returns as soon as one is seen)."""
    import rclpy

    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain, args=[])
    node = rclpy.create_node(f"wm_agent_preflight_{os.getpid()}", context=context,
                             enable_rosout=False, start_parameter_services=False)
    found: dict[str, list[str]] = {}
    unknown = "_NODE_NAME_UNKNOWN_"  # a publisher seen before its node's name was discovered

    def named() -> bool:
        return bool(found) and not any(unknown in n for nodes in found.values() for n in nodes)

    try:
        deadline = time.monotonic() + wait_s
        while not named() and time.monotonic() < deadline:
            time.sleep(0.1)
            for topic in GRAPH_TOPICS:
                nodes = sorted({f"{i.node_namespace.rstrip('/')}/{i.node_name}"
                                for i in node.get_publishers_info_by_topic(topic)})
                if nodes:
                    found[topic] = nodes
        found = {t: [n if unknown not in n else "an unnamed node" for n in nodes]
                 for t, nodes in found.items()}
    finally:
        node.destroy_node()
        context.try_shutdown()
    return found
