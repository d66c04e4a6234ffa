"""A worker with broken configuration refuses to start, naming the file: never a silent allow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runtime.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration


def start_worker(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "worker.py")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**os.environ, "FIREBREAK_VAULT_TOKEN": "unused", "TEMPORAL_ADDRESS": "127.0.0.1:1", **env},
        check=False,
    )


def test_broken_policy_stops_worker_with_file_and_line(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", policies, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (policies / "extra.rego").write_text(
        "package firebreak.extra\n\nimport rego.v1\n\nallow if {\n  input.x ==\n}\n"
    )
    result = start_worker(tmp_path, FIREBREAK_POLICIES_DIR=str(policies))
    assert result.returncode == 2, result.stderr
    assert f"{policies / 'extra.rego'}:" in result.stderr
    assert "cannot start" in result.stderr


def test_bad_policy_data_stops_worker(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", policies, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    (policies / "data.yaml").write_text("firebreak: [unclosed\n")
    result = start_worker(tmp_path, FIREBREAK_POLICIES_DIR=str(policies))
    assert result.returncode == 2
    assert "data.yaml" in result.stderr


def test_missing_vault_token_stops_worker(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "FIREBREAK_VAULT_TOKEN"}
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "worker.py")],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={**env, "TEMPORAL_ADDRESS": "127.0.0.1:1"},
        check=False,
    )
    assert result.returncode == 2
    assert "FIREBREAK_VAULT_TOKEN" in result.stderr


def test_an_unknown_role_is_refused_naming_the_option_or_the_setting(tmp_path: Path) -> None:
    flag = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "worker.py"), "--role", "memroy"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert flag.returncode == 2
    assert "argument --role: invalid choice: 'memroy'" in flag.stderr, flag.stderr
    setting = start_worker(tmp_path, FIREBREAK_WORKER_ROLE="memroy")
    assert setting.returncode == 2
    assert (
        "cannot start: invalid settings: FIREBREAK_WORKER_ROLE: Input should be 'all', 'incident' or 'memory'"
        in setting.stderr
    ), setting.stderr


def test_the_memory_role_needs_no_vault_token_or_policies(tmp_path: Path) -> None:
    """A memory worker checks only memory: it gets as far as connecting to Temporal (unreachable here)."""
    env = {k: v for k, v in os.environ.items() if k != "FIREBREAK_VAULT_TOKEN"}
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "worker.py"), "--role", "memory"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env={
            **env,
            "TEMPORAL_ADDRESS": "127.0.0.1:1",
            "FIREBREAK_METRICS_ENABLED": "false",
            "FIREBREAK_POLICIES_DIR": str(tmp_path / "no-policies"),
            "FIREBREAK_DATA_DIR": str(tmp_path / "data"),
        },
        check=False,
    )
    assert result.returncode == 3, result.stderr
    assert "cannot connect to Temporal" in result.stderr
