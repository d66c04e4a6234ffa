"""The dev stack `make dev` runs: Temporal, OpenBao, worker, API, codec server, demo."""
