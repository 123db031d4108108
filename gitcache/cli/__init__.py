"""The click layer: parse arguments, call the core, print, map errors to exit codes."""
