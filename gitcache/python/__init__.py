"""Python functions as steps (docs/python.md).

This package is imported only by code that uses Python steps: `gitcache/__init__.py`
exposes `step`, `File` and `records` lazily, so the shell commands never load it.
"""
