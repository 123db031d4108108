"""The starter workflow `gitcache init` writes, and the demo's example project."""

from __future__ import annotations

STARTER_TOML = """\
# gitcache.toml: the steps of this project's workflow.
# Each step's outputs, logs and a record are stored in git under refs/gitcache/.
# `gitcache run` runs what changed, and skips or restores the rest.

[params]                      # defaults; override with: gitcache run -p size=2000
size = 1000

[steps.random]
outputs = ["temp/result.txt"]
run = "dd if=/dev/urandom of={outputs} count={size} 2>/dev/null"

[steps.size]
inputs  = ["temp/result.txt"]
outputs = ["temp/size.txt"]
run = "wc -c < {inputs} > {outputs}"
"""

DEMO_TOML = '''\
[params]
size = 1000

[steps.random]
outputs = ["temp/result.txt"]
run = "dd if=/dev/urandom of={outputs} count={size}"

[steps.size]
inputs  = ["temp/result.txt"]
outputs = ["temp/size.txt"]
run = """
python3 scripts/size.py {inputs} > {outputs}
"""
env = ["LC_ALL"]
'''

DEMO_TOML_COMMENTED = DEMO_TOML.replace(
    'run = """\n',
    'run = """\n# comments and blank lines do not change the signature\n\n',
).replace("{inputs} > {outputs}", "{inputs}   >   {outputs}   # extra spaces too")

DEMO_SCRIPT = """\
import os
import sys

print(os.path.getsize(sys.argv[1]))
"""
