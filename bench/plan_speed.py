"""Planner speed: latency at batch 1, throughput at batch 1/100/1,000, GEMM fraction.

    .venv/bin/python bench/plan_speed.py [--model models/wm_plan] [--threads 1] [--quick]

For every available backend (torch eager beside it in the same run):

* full configuration (256 samples × 4 iterations × 8 steps, raw and latent actions) at batch 1:
  p50/p99 latency [ms] of ``Planner.plan`` (noise drawing included);
* the fleet configuration (:data:`wm_agent.planning.config.FLEET`: latent actions, 16 samples ×
  1 iteration × 8 steps, warm-started) at batch 1, 100, 1,000: time per call and drones per second;
* FLOPs per plan (dense layers) and, at batch 1,000, the achieved FLOP rate as a fraction of
  this machine's GEMM rate for the same matrix sizes (torch.matmul on the same shapes, measured
  in the same run).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wm_agent.inference import InferenceOptions
from wm_agent.planning.backends import open_planner, plan_backend_status
from wm_agent.planning.config import FLEET, PlannerConfig, describe_config
from wm_agent.planning.plan_graph import build_graph, flops_per_plan
from wm_agent.planning.planner import Planner

FULL = PlannerConfig(samples=256, elites=32, iterations=4, horizon=8, action_space="raw")
FULL_LATENT = replace(FULL, action_space="latent")


def inputs(b: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    obs = np.zeros((b, 51), np.float32)
    obs[:, 0:3] = rng.normal(0, 0.5, (b, 3))
    obs[:, 3:6] = (0, 0, -1)
    obs[:, 9] = 1.5
    obs[:, 13:21] = rng.uniform(0.5, 3.0, (b, 8))
    obs[:, 21:23] = (3.0, 1.5)
    pos = rng.uniform((2, 2, 1), (38, 28, 3), (b, 3)).astype(np.float32)
    goal = (pos + rng.normal(0, 4, (b, 3)) * (1, 1, 0.2)).astype(np.float32)
    obs[:, 10:13] = goal - pos
    plan = np.zeros((b, 8, 4), np.float32)
    return obs, pos, goal, plan


def time_calls(pl: Planner, b: int, reps: int) -> list[float]:
    obs, pos, goal, plan = inputs(b)
    for _ in range(2):
        pl.plan(obs, pos, goal, plan)
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        pl.plan(obs, pos, goal, plan)
        out.append((time.perf_counter() - t) * 1e3)
    return out


def gemm_rate(model: torch.nn.Module, rows: int, reps: int = 3) -> float:
    """FLOP/s of torch.matmul on the rollout's Linear shapes with ``rows`` rows."""
    mods = [m for part in (model.dynamics, model.transition_head)  # type: ignore[attr-defined]
            for m in part.modules() if isinstance(m, torch.nn.Linear)]
    mats = [(torch.randn(rows, m.in_features), torch.randn(m.in_features, m.out_features)) for m in mods]
    flops = sum(2 * rows * a.shape[1] * w.shape[1] for a, w in mats)
    for a, w in mats:
        a @ w
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        for a, w in mats:
            a @ w
        best = min(best, time.perf_counter() - t)
    return flops / best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, default=Path("models/wm_plan"),
                   help="model folder (default the shipped planning model)")
    p.add_argument("--threads", type=int, default=1, help="CPU threads for torch and onnxruntime")
    p.add_argument("--reps", type=int, default=50, help="timed calls at batch 1")
    p.add_argument("--batches", type=int, nargs="+", default=[1, 100, 1000])
    p.add_argument("--quick", action="store_true", help="fewer repetitions")
    p.add_argument("--cache", type=Path, default=Path("runs/plan/cache"), help="plan.onnx cache")
    ns = p.parse_args(argv)
    torch.set_num_threads(ns.threads)
    reps = 10 if ns.quick else ns.reps
    status = plan_backend_status()
    for name, why in status.items():
        if why != "available":
            print(f"backend {name}: skipped ({why})")
    backends = [b for b, why in status.items() if why == "available"]
    graph, _, _ = build_graph(ns.model, FULL)
    model = graph.model
    opts = InferenceOptions(threads=ns.threads, cache=ns.cache, opt_batch=1)  # TensorRT: batch 1
    big = max(ns.batches)
    fleet_opts = replace(opts, opt_batch=big, max_batch=big)  # TensorRT: up to the largest batch
    rows: list[dict[str, Any]] = []
    print(f"model {ns.model}: hidden {model.config.hidden_dim}, latent {model.config.latent_dim}; "
          f"{ns.threads} thread(s)")
    for cfg in (FULL, FULL_LATENT, FLEET):
        print(f"  {describe_config(cfg)}: {flops_per_plan(model, cfg) / 1e6:.1f} MFLOP per drone and plan")
    for backend in backends:
        full = open_planner(backend, ns.model, FULL, opts)
        lat = time_calls(full, 1, reps)
        rows.append({"backend": backend, "config": describe_config(FULL), "batch": 1,
                     "p50": np.median(lat), "p99": np.percentile(lat, 99)})
        full_latent = open_planner(backend, ns.model, FULL_LATENT, opts)
        lat = time_calls(full_latent, 1, reps)
        rows.append({"backend": backend, "config": describe_config(FULL_LATENT), "batch": 1,
                     "p50": np.median(lat), "p99": np.percentile(lat, 99)})
        fleet = open_planner(backend, ns.model, FLEET, fleet_opts)
        for b in ns.batches:
            lat = time_calls(fleet, b, max(3, reps // max(1, b // 20)))
            rows.append({"backend": backend, "config": describe_config(FLEET), "batch": b,
                         "p50": np.median(lat), "p99": np.percentile(lat, 99)})
    print("| backend | config | batch | p50 [ms] | p99 [ms] | drones/s |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['config']} | {r['batch']} | {r['p50']:.2f} | {r['p99']:.2f} | "
              f"{r['batch'] / r['p50'] * 1e3:,.0f} |")
    by = {(r["backend"], r["config"], r["batch"]): r for r in rows}
    if "onnxruntime" in backends:
        k = describe_config(FULL)
        ratio = by[("torch", k, 1)]["p50"] / by[("onnxruntime", k, 1)]["p50"]
        print(f"onnxruntime vs torch eager, {k}, batch 1: {ratio:.2f}x faster")
    big = max(ns.batches)
    rate = gemm_rate(model, big * FLEET.samples)
    fl = flops_per_plan(model, FLEET) * big
    for backend in backends:
        r = by[(backend, describe_config(FLEET), big)]
        achieved = fl / (r["p50"] / 1e3)
        print(f"{backend} batch {big}: {fl / 1e9:.2f} GFLOP per call, {achieved / 1e9:.1f} GFLOP/s = "
              f"{achieved / rate:.0%} of this machine's GEMM rate ({rate / 1e9:.1f} GFLOP/s, same shapes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
