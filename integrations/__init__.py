"""I/O clients with no Temporal in them: OpenBao/Vault, ansible-runner, Prometheus, traces,
logs, chat/Jira/ServiceNow. The activities in `activities/` are thin wrappers over these."""
