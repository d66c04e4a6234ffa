"""A worker imports what it is configured to use: no Anthropic SDK without an LLM key."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_worker_without_an_llm_key_never_imports_the_anthropic_sdk() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBREAK_ANTHROPIC")}
    probe = (
        "import sys, worker\n"
        "from agents.factory import build_reasoner\n"
        "from policies.catalog import load_catalog\n"
        "from runtime.settings import Settings\n"
        "settings = Settings()\n"
        "reasoner = build_reasoner(settings, load_catalog(settings.playbooks_dir))\n"
        "print(reasoner.llm is None, 'anthropic' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["True", "False"], out.stdout
