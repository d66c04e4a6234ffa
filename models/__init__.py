"""Types that cross process and workflow boundaries; pure pydantic, no I/O."""
