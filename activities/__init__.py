"""Activities: the only code that does I/O. Each class gets its clients injected."""
