"""Tooling outside the runtime: agent evals (`evals.agents`) and diagnosis evals (`evals.rca`)."""
