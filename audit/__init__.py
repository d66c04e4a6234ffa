"""The audit: an incident's workflow history read back as a timeline, hash-chained, rendered."""
