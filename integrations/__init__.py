"""I/O clients that know nothing of Temporal: OpenBao's SSH CA, the inventory file.

Activities use them; they import only `models` and their own libraries, so a worker, a CLI
command or a test can use them alike.
"""
