"""What users read carries no internal jargon: no issue numbers, no work-tracking names, no notes
about the machines the project is built on. Code comments and tests may cite their history;
README, CHANGELOG and docs/ speak to the people who adopt the gateway."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
USER_FACING = [ROOT / "README.md", ROOT / "CHANGELOG.md", *sorted((ROOT / "docs").rglob("*.md"))]

JARGON = {
    "an issue number": re.compile(r"\b(?:issue|task|finding) #?\d+\b", re.I),
    "an engineer's or branch's tag": re.compile(r"\b(?:engineer\s+)?H\d{1,2}[a-z]?\b(?!\w)"),
    "the design card": re.compile(r"design card", re.I),
    "a work session": re.compile(r"\b(?:this|last|previous|next|earlier) session\b", re.I),
    "the build machines": re.compile(r"\bthese machines\b", re.I),
    "a helper": re.compile(r"\bhelper (?:agent|subagent)s?\b", re.I),
}


def test_user_facing_docs_hold_no_internal_jargon() -> None:
    found = []
    for path in USER_FACING:
        if not path.exists():
            continue
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            for what, pattern in JARGON.items():
                match = pattern.search(line)
                if match:
                    found.append(f"{path.relative_to(ROOT)}:{number}: {what}: {match.group(0)!r}")
    assert not found, "internal jargon in user-facing docs:\n" + "\n".join(found)
