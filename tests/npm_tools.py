"""Node.js tools the suite runs (pinned under ``tools/<name>/``), installed on first use.

CI starts from a fresh clone, so a tool is installed from its lock file with
``npm ci`` when it is missing or not at the pinned versions. Node.js and npm
are required (``.ci/run`` installs them when missing); without them the test
fails rather than skipping.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def _installed_version(tool_dir: Path, package: str) -> str | None:
    manifest = tool_dir / "node_modules" / package / "package.json"
    return json.loads(manifest.read_text())["version"] if manifest.exists() else None


def _is_current(tool_dir: Path) -> bool:
    pinned = json.loads((tool_dir / "package.json").read_text())["devDependencies"]
    return all(_installed_version(tool_dir, name) == version for name, version in pinned.items())


def installed_tool(name: str) -> tuple[str, Path]:
    """(the node executable, the tool's folder), after ``npm ci`` there if needed."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.fail(f"Node.js and npm are needed to run tools/{name}.")
    tool_dir = TOOLS / name
    if not _is_current(tool_dir):
        installed = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund", "--prefer-offline"],
            cwd=tool_dir,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert installed.returncode == 0, f"npm ci failed:\n{installed.stdout[-3000:]}\n{installed.stderr[-3000:]}"
        assert _is_current(tool_dir), f"npm ci did not install the pinned versions in tools/{name}"
    return node, tool_dir
