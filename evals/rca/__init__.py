"""RCA tooling: the scenario format, the simulator, baselines and the evaluation harness."""
