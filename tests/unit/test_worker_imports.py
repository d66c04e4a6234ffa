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


# What each role may load: the incident worker neither the embedding model's stack nor
# qdrant-client; the memory worker qdrant-client at build (the model loads when warmed).
HEAVY = ("torch", "sentence_transformers", "transformers", "qdrant_client")


def built_role(role: str) -> list[str]:
    """(incident served, memory served, heavy modules loaded) after building a role's activities."""
    probe = (
        "import sys, worker\n"
        "from runtime.settings import Settings\n"
        f"activities = worker.build_activities(Settings(_env_file=None, worker_role={role!r}, "
        "vault_token='unused', embeddings='dense'))\n"
        f"heavy = [m for m in {HEAVY!r} if m in sys.modules]\n"
        "print(activities.incident is not None, activities.memory is not None, ','.join(heavy) or '-')\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIREBREAK_")}
    out = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.split()


def test_the_incident_role_never_imports_the_embedding_model_or_qdrant() -> None:
    # Dense embeddings required (and installed): still nothing of them in an incident worker.
    assert built_role("incident") == ["True", "False", "-"]


def test_the_memory_role_builds_memory_alone_and_the_probe_sees_its_imports() -> None:
    assert built_role("memory") == ["False", "True", "qdrant_client"]
