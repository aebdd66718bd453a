#!/usr/bin/env python3
"""Regenerate docs/INTERFACES.md from msg/msg/*.msg and msg/srv/*.srv (make docs)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HEADER = """# Interfaces (wm_agent_msgs)

The `.msg`/`.srv` files in `msg/` are the source of truth; this page collects them (regenerate
with `make docs`). Units and frames: ENU `map`, SI (see ARCHITECTURE.md). Batched arrays are
flattened row-major: `position[3*i + k]` belongs to drone `ids[i]`.
"""


def main() -> None:
    parts = [HEADER]
    for folder, pattern in (("msg", "*.msg"), ("srv", "*.srv")):
        for path in sorted((REPO / "msg" / folder).glob(pattern)):
            parts.append(f"## {path.name}\n\n```\n{path.read_text().strip()}\n```\n")
    (REPO / "docs" / "INTERFACES.md").write_text("\n".join(parts))


if __name__ == "__main__":
    main()
