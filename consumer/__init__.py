"""Alerts from a message bus (NATS JetStream) into incidents, through the webhook's own ingest."""
