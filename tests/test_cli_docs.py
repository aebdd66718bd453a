"""Docs and CLI agree (issue #14): every `wm-agent <command> --flag` the docs, the launch files or
a message names exists; README's table of `wm-agent sim` options is the parser's; `wm-agent
graph` prints every node `sim` starts, with its topics, as command lines that paste into a shell;
training and export write under runs/, never into a tracked model."""

from __future__ import annotations

import argparse
import importlib
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

from wm_agent.cli import PASSTHROUGH, build_parser, options_markdown
from wm_agent.graph import FleetSimArgs, topics_of
from wm_agent.launcher import command_for
from wm_agent.run import run_specs

REPO = Path(__file__).resolve().parent.parent
WM_AGENT = Path(sys.executable).parent / "wm-agent"
MENTION = re.compile(r"wm-agent (sim|graph|replay|eval-model|eval|collect|train|export|check)\b([^`\n|]*)")


def options_of(command: str) -> set[str]:
    """Every option string `wm-agent <command>` accepts."""
    if command in PASSTHROUGH:
        module, _, _ = PASSTHROUGH[command]
        parser = importlib.import_module(module).build_parser()
    else:
        top = build_parser()
        sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[command]
    return {s for a in parser._actions for s in a.option_strings}


def mentions() -> list[tuple[str, str, str]]:
    """(file, command, flag) of every `wm-agent <command> ... --flag` in the docs and the code."""
    files = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md")),
             *sorted((REPO / "launch").glob("*.py")), *sorted((REPO / "wm_agent").rglob("*.py"))]
    out = []
    for f in files:
        for m in MENTION.finditer(f.read_text()):
            for flag in re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", m.group(2)):
                out.append((str(f.relative_to(REPO)), m.group(1), flag))
    return out


def test_every_flag_the_docs_and_messages_name_exists() -> None:
    found = mentions()
    assert len(found) > 10, "the scan finds the README's commands"
    missing = [(f, c, flag) for f, c, flag in found if flag not in options_of(c)]
    assert missing == [], f"flags named but not accepted: {missing}"


README_TABLE = re.compile(r"<!-- wm-agent sim options -->\n(.*?)\n<!-- end -->", re.S)


def test_readme_lists_every_sim_option_as_help_says() -> None:
    readme = (REPO / "README.md").read_text()
    block = README_TABLE.search(readme)
    assert block, "README.md has the generated table between <!-- wm-agent sim options --> and <!-- end -->"
    expected = options_markdown(build_parser(), "sim")
    assert block.group(1).strip() == expected, (
        "README's `wm-agent sim` options differ from --help; paste python -c 'from wm_agent.cli "
        "import build_parser, options_markdown; print(options_markdown(build_parser(), \"sim\"))'")
    for flag in options_of("sim") - {"-h", "--help"}:
        assert f"`{flag}" in block.group(1), flag


def graph_blocks(text: str) -> dict[str, list[str]]:
    blocks: dict[str, list[str]] = {}
    name = ""
    for line in text.splitlines():
        if not line.startswith(" "):
            name = line.split(":", 1)[0]
            blocks[name] = []
        else:
            blocks[name].append(line.strip())
    return blocks


def test_graph_prints_every_node_with_topics_and_shell_ready_commands(tmp_path: Path) -> None:
    out = tmp_path / "run"
    r = subprocess.run([str(WM_AGENT), "graph", "--drones", "3", "--out", str(out)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    blocks = graph_blocks(r.stdout)
    specs = run_specs(FleetSimArgs(drones=3).resolved(), out, 60.0, False)
    assert list(blocks) == [s.name for s in specs]
    assert "subscribes: <every project topic with a publisher>" in blocks["recorder"]
    for spec in specs:
        lines = blocks[spec.name]
        assert shlex.split(lines[-1]) == command_for(spec), "the printed line is what sim runs"
        t = topics_of(spec)
        if t.publishes:
            assert f"publishes:  {', '.join(t.publishes)}" in lines
    bridge = " ".join(blocks["sim_bridge"])
    assert "/tf" in bridge and "/drone_<id>/odom (id < 3)" in bridge
    assert "-p ledger_path:=" + str(out / "ledger.sqlite") in r.stdout


def test_a_printed_command_line_runs_in_a_shell(tmp_path: Path) -> None:
    """The planner's line carries an empty value (model_path: the shipped model): pasted into
    bash, ROS reads it as the empty string and the node starts."""
    r = subprocess.run([str(WM_AGENT), "graph", "--drones", "2", "--out", str(tmp_path / "run")],
                       capture_output=True, text=True, timeout=120)
    line = graph_blocks(r.stdout)["fleet_planner"][-1]
    assert """'model_path:=""'""" in line
    proc = subprocess.Popen(["bash", "-c", f"exec {line}"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        seen = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            seen.append(proc.stdout.readline() if proc.stdout else "")
            if "backend onnxruntime" in seen[-1]:
                break
        assert any("backend onnxruntime" in s for s in seen), "".join(seen)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        proc.communicate(timeout=30)




def test_every_command_prints_its_help() -> None:
    """`wm-agent <command> --help` prints the usage and exits 0 for every command (a help text
    with a bare '%', e.g. "id % K", made argparse's formatter raise for `sim`)."""
    top = build_parser()
    sub = next(a for a in top._actions if isinstance(a, argparse._SubParsersAction))
    for command in sorted(sub.choices):
        parser = (importlib.import_module(PASSTHROUGH[command][0]).build_parser()
                  if command in PASSTHROUGH else sub.choices[command])
        assert parser.format_help().startswith("usage:")  # ValueError on a bad format string
    r = subprocess.run([str(WM_AGENT), "sim", "--help"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr[-400:]
    assert r.stdout.startswith("usage: wm-agent sim") and "--planner-shards" in r.stdout
