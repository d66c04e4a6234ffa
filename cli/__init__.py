"""The `firebreak` command line."""
