"""Running shell text under the real shells (dash as /bin/sh, and bash)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

SHELLS = {"sh": "/bin/sh", "bash": shutil.which("bash") or "/bin/bash"}
# A fixed, small environment: `x` is set, `u` is not.
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "x": "yz"}
# The commands only print; they run in an empty directory, removed at exit.
_SCRATCH_DIR = tempfile.TemporaryDirectory(prefix="gitcache-shellrun-")
_SCRATCH = Path(_SCRATCH_DIR.name)


def run(shell: str, text: str) -> tuple[bytes, int]:
    """What `shell -c text` prints on stdout, and its exit status.

    stderr is left out: error messages carry line numbers, which blank lines move.
    """
    done = subprocess.run(
        [SHELLS[shell], "-c", text],
        cwd=_SCRATCH,
        env=ENV,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=20,
        check=False,
    )
    return done.stdout, done.returncode
