"""Firebreak's memory: runbooks and post-mortems, past incidents, and what people said about them.

- `documents`: knowledge files (Markdown + front matter) parsed and chunked
- `sparse`, `dense`: BM25 vectors computed here; MiniLM embeddings from the `dense` extra
- `store`: the Qdrant connection (local folder or server) and collection shape
- `knowledge`: idempotent ingest and passage search
- `episodes`: incident records, similar-incident search, feedback, track records
- `ranking`: actions ranked from runbooks and past outcomes
- `service.Memory`: all of it behind one object, built from `Settings`
"""
