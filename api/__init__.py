"""Alert webhook ingress (ASGI)."""
