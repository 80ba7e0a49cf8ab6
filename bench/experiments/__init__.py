"""Prototypes of library changes that only bench/ applies, by monkey-patching (README.md)."""
