"""I/O clients with no Temporal in them: OpenBao/Vault (and its SSH CA), ansible-runner (local
and over SSH), the inventory file, Prometheus, traces, logs, chat/Jira/ServiceNow. The
activities in `activities/` are thin wrappers over these."""
