"""Alert ingest shared by every door (webhook API, bus consumer)."""
