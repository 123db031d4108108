"""gitcache: a git-native, content-addressed cache and record of workflow steps.

The Python API (`gitcache.step`, `gitcache.File`, `gitcache.records`, ...) is loaded
on first use (module `__getattr__`), so `import gitcache` and the shell commands
never import the Python-steps package.
"""

from __future__ import annotations

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "step": "gitcache.python.step",
    "StepFunction": "gitcache.python.step",
    "File": "gitcache.python.files",
    "Task": "gitcache.python.tasks",
    "records": "gitcache.python.records",
    "trust_record": "gitcache.python.records",
    "GitcacheWarning": "gitcache.python.session",
}

__all__ = ["File", "GitcacheWarning", "StepFunction", "Task", "records", "step", "trust_record"]

# Not typing.TYPE_CHECKING: importing typing alone would cost a shell no-op more than
# the rest of this module (mypy treats a module-level TYPE_CHECKING = False as True).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from gitcache.python.files import File
    from gitcache.python.records import records, trust_record
    from gitcache.python.session import GitcacheWarning
    from gitcache.python.step import StepFunction, step
    from gitcache.python.tasks import Task


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'gitcache' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
