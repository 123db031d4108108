"""gitcache: a git-native, content-addressed cache and record of workflow steps."""

__version__ = "0.1.0"
