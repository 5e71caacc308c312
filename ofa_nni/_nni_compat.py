"""Placeholder, replaced below."""
def apply() -> None:
    pass
