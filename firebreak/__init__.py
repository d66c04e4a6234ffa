"""Process plumbing shared by the worker, the API and the CLI: connections, the dev stack."""
