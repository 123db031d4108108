"""The code a step's signature names is the code that runs: no stale hit from code."""

from __future__ import annotations

from tests.python.conftest import PyRepo

EDITED = """
import gitcache

def helper(v: int) -> int:
    return v * 10

@gitcache.step
def inc(x: int) -> int:
    return helper(x) + 1
"""

# Imports the module, then edits its file (as an editor does while a notebook runs),
# then calls the step: the old code runs, so its result must not be filed under the
# new code's signature.
EDIT_THEN_CALL = """
import sys
import ed
from gitcache.python.errors import StepDefinitionError

text = open("ed.py").read()
open("ed.py", "w").write(text.replace(sys.argv[1], sys.argv[2]))
try:
    print(ed.inc(1))
except StepDefinitionError as exc:
    print("error:", exc.message)
"""


def test_a_module_edited_after_it_was_imported_is_refused(pyrepo: PyRepo) -> None:
    pyrepo.write("ed.py", EDITED)
    done = pyrepo.python(EDIT_THEN_CALL, "v * 10", "v * 20")
    assert "helper is not the code in ed.py any more" in done.stdout, done.stdout
    assert not [r for r in pyrepo.refs() if r.startswith("refs/gitcache/sig/")]
    fresh = pyrepo.python("import ed\nprint(ed.inc(1))")
    assert fresh.stdout.strip() == "21"  # the new code's result, not the old one's 11


def test_comments_added_after_the_import_are_no_edit(pyrepo: PyRepo) -> None:
    pyrepo.write("ed.py", EDITED)
    done = pyrepo.python(EDIT_THEN_CALL, "return v * 10", "return v * 10  # tens")
    assert done.stdout.strip() == "11", done.stdout
    assert pyrepo.python("import ed\nprint(ed.inc(1))").stdout.strip() == "11"
    assert len([r for r in pyrepo.refs() if r.startswith("refs/gitcache/sig/")]) == 1
