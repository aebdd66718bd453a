"""Bag throughput: recording (BagWriter.write of serialized FleetState) and reading (raw,
decoded, fleet_arrays), for fleets of several sizes.

    .venv/bin/python bench/bag_speed.py                      # 50 and 1,000 drones, zstd and none
    .venv/bin/python bench/bag_speed.py --drones 10000 --messages 200 --compression none

Record figures exclude serialization (the recorder receives CDR bytes from DDS and never
deserializes); MB/s counts message payload bytes. Read figures: raw = records out of the MCAP
file (chunk CRC checked, decompressed); decode = rosbags CDR -> message objects (numpy arrays for
FleetState's array fields); arrays = fleet_arrays() building (T, N, k) arrays.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from rclpy.serialization import serialize_message

from wm_agent import topics
from wm_agent.bags import BagWriter, fleet_arrays, open_bag
from wm_agent.conversions import FleetStateArrays, fleet_state_to_msg


def sample(n: int, k: int, base: np.ndarray, vel: np.ndarray) -> bytes:
    """FleetState k of a fleet flying straight at constant velocity (50 Hz)."""
    arrays = FleetStateArrays(
        ids=np.arange(n, dtype=np.uint32),
        position=(base + vel * (0.02 * k)).astype(np.float32),
        velocity=vel.astype(np.float32),
        orientation=np.tile(np.array([0, 0, 0, 1], np.float32), (n, 1)),
        body_rates=np.zeros((n, 3), np.float32),
        status=np.full(n, 3, np.uint16),
        step=k,
    )
    return bytes(serialize_message(fleet_state_to_msg(arrays)))


def run(n: int, count: int, compression: str, root: Path) -> None:
    rng = np.random.default_rng(0)
    base, vel = rng.uniform(-50, 50, (n, 3)), rng.normal(0, 1, (n, 3))
    payloads = [sample(n, k, base, vel) for k in range(count)]      # every message distinct
    path = root / f"bench_{n}_{compression}"
    t0 = time.perf_counter()
    with BagWriter(path, compression=compression) as w:
        w.add_topic(topics.FLEET_STATE, "wm_agent_msgs/msg/FleetState")
        for k in range(count):
            w.write(topics.FLEET_STATE, payloads[k % len(payloads)], 1_000_000_000 + k * 20_000_000)
    t_write = time.perf_counter() - t0
    size = sum(p.stat().st_size for p in path.glob("*.mcap"))
    payload_mb = sum(len(payloads[k % len(payloads)]) for k in range(count)) / 1e6
    bag = open_bag(path)
    bag.decode(next(bag.messages()))          # warm-up: builds the typestore once
    t0 = time.perf_counter()
    raw = sum(1 for _ in bag.messages())
    t_raw = time.perf_counter() - t0
    t0 = time.perf_counter()
    dec = sum(1 for _ in bag.decoded())
    t_dec = time.perf_counter() - t0
    t0 = time.perf_counter()
    fleet = fleet_arrays(bag)
    t_arr = time.perf_counter() - t0
    assert raw == dec == count and fleet.position.shape == (count, n, 3)
    print(
        f"{n:>6} drones {compression:>5}: record {count / t_write:>9,.0f} msg/s"
        f" {payload_mb / t_write:>7.1f} MB/s"
        f" (file {size / 1e6:6.1f} MB for {payload_mb:6.1f} MB) | read raw {raw / t_raw:>9,.0f} msg/s,"
        f" decode {dec / t_dec:>8,.0f} msg/s, fleet_arrays {count / t_arr:>8,.0f} msg/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--drones", type=int, nargs="+", default=[50, 1000], help="fleet sizes")
    parser.add_argument("--messages", type=int, default=2000, help="FleetState messages per run")
    parser.add_argument("--compression", nargs="+", default=["zstd", "none"], choices=["zstd", "lz4", "none"])
    ns = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="wm_bag_bench_"))
    try:
        for n in ns.drones:
            for comp in ns.compression:
                run(n, ns.messages, comp, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
