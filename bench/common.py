"""What every benchmark prints about the code it measured."""

from __future__ import annotations

import subprocess
from pathlib import Path


def code_version(root: Path) -> str:
    """``<commit>`` of the checkout, ``+ N changed files`` when the tree is dirty."""
    try:
        head = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    dirty = [line for line in changed if not line[3:].startswith("bench/")]
    return f"{head} + {len(dirty)} uncommitted changes outside bench/" if dirty else head
