"""Runtime plumbing shared by the worker, the API, the consumer and the CLI.

The Temporal connection, the payload codec and its server, tracing, Prometheus metrics, the
settings object, and the bounded parser every untrusted JSON or YAML input goes through.
"""
