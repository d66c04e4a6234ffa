"""Agent evals: labelled incidents scored per reasoner (`python -m evals.agents.run`)."""
