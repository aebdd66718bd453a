"""Docs stay true: INTERFACES.md shows every interface file as it is."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_interfaces_doc_matches_the_msg_files() -> None:
    doc = (REPO / "docs" / "INTERFACES.md").read_text()
    files = sorted((REPO / "msg" / "msg").glob("*.msg")) + sorted((REPO / "msg" / "srv").glob("*.srv"))
    assert files
    for f in files:
        assert f"## {f.name}" in doc, f"docs/INTERFACES.md lacks {f.name}"
        assert f.read_text().strip() in doc, f"docs/INTERFACES.md shows an old {f.name}"


def test_readme_names_the_two_commands() -> None:
    readme = (REPO / "README.md").read_text()
    assert "make run" in readme and "make test" in readme
    assert (REPO / ".ci" / "run").read_text().strip().endswith("make test")
