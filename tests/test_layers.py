"""The layers contract in pyproject.toml ([tool.importlinter]) holds: no
module imports from a layer above its own, and pysyncobj is raftkv.raft's
alone, its private names raftkv.raft.engine's. The public API type-checks
([tool.mypy])."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.timeout(120)
def test_import_contracts_are_kept():
    lint_imports = os.path.join(os.path.dirname(sys.executable), "lint-imports")
    result = subprocess.run([lint_imports, "--no-cache"], cwd=REPO, capture_output=True, text=True, timeout=110)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.timeout(300)
def test_public_api_type_checks():
    result = subprocess.run([sys.executable, "-m", "mypy", "--no-incremental"], cwd=REPO,
                            capture_output=True, text=True, timeout=280)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Success: no issues found" in result.stdout


def test_pysyncobj_private_names_stay_in_the_engine_module():
    package = os.path.join(REPO, "raftkv")
    users = []
    for folder, _, files in os.walk(package):
        for name in files:
            path = os.path.join(folder, name)
            if name.endswith(".py") and path != os.path.join(package, "raft", "engine.py"):
                with open(path, encoding="utf-8") as f:
                    if "_SyncObj__" in f.read():
                        users.append(os.path.relpath(path, REPO))
    assert users == []
