"""`python -m devstack [--demo]`: what `make dev` and `make demo` run."""

from devstack.stack import main

if __name__ == "__main__":
    raise SystemExit(main())
