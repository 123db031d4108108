"""Errors of Python steps, each a GitcacheError with its exit code (gitcache/errors.py)."""

from __future__ import annotations

from gitcache.errors import ConfigError, GitcacheError


class StepDefinitionError(ConfigError):
    """A function cannot be a step as written (unannotated, a lambda, a generator...)."""


class ArgumentError(ConfigError):
    """An argument of a step call cannot be validated or put in a signature."""


class ResultError(GitcacheError):
    """A step's return value does not match its hint, or cannot be stored or loaded."""
