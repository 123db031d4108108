"""InOrder: lines of overlapping sweep items shown as if they ran one after the other."""

from __future__ import annotations

from gitcache.inorder import InOrder


def test_lines_wait_for_the_items_still_recording() -> None:
    shown: list[str] = []
    lines = InOrder()
    lines.show(lambda: shown.append("a running"))
    lines.handed_off("a")
    lines.show(lambda: shown.append("b running"))
    lines.show(lambda: shown.append("b output"))
    lines.handed_off("b")
    lines.show(lambda: shown.append("c running"))
    assert shown == ["a running"]
    lines.finished("b", lambda: shown.append("b ran"))  # b before a: still waits for a
    assert shown == ["a running"]
    lines.finished("a", lambda: shown.append("a ran"))
    assert shown == ["a running", "a ran", "b running", "b output", "b ran", "c running"]
    lines.show(lambda: shown.append("c output"))  # nothing waits any more: shown at once
    lines.finished("c", lambda: shown.append("c ran"))
    assert shown[-2:] == ["c output", "c ran"]


def test_a_result_without_hand_off_waits_its_turn_and_flush_shows_the_rest() -> None:
    shown: list[str] = []
    lines = InOrder()
    lines.handed_off("a")
    lines.finished("h", lambda: shown.append("h hit"))
    lines.show(lambda: shown.append("x running"))
    assert shown == []
    lines.flush()  # the run ended before a finished (a signal): nothing is lost
    assert shown == ["h hit", "x running"]
