"""Live presence: distinct devices per project seen inside the window, pruned as time passes."""

from __future__ import annotations

from eventlens.actors.presence import PresenceBook

MIN = 60_000


def test_counts_distinct_devices_inside_the_window_per_project() -> None:
    book = PresenceBook(window_s=300)
    now = 10_000 * MIN
    book.add([("p1", "a", now - 1 * MIN), ("p1", "a", now - 2 * MIN), ("p1", "b", now - 4 * MIN)], now)
    book.add([("p2", "a", now)], now)
    assert book.count("p1", now) == 2
    assert book.count("p2", now) == 1
    assert book.count("p3", now) == 0
    # b leaves the 5-minute window first; a's newest time is what counts
    assert book.count("p1", now + 1 * MIN + 1) == 1
    assert book.count("p1", now + 4 * MIN + 1) == 0


def test_an_older_time_never_moves_a_device_back() -> None:
    book = PresenceBook(window_s=300)
    now = 10_000 * MIN
    book.add([("p", "a", now)], now)
    book.add([("p", "a", now - 10 * MIN)], now)  # a late event of the same device
    assert book.count("p", now + 4 * MIN) == 1


def test_projects_nobody_asks_about_are_pruned() -> None:
    book = PresenceBook(window_s=300)
    now = 10_000 * MIN
    book.add([("quiet", f"d{i}", now) for i in range(1000)], now)
    book.add([("busy", "x", now + 6 * MIN)], now + 6 * MIN)
    assert "quiet" not in book.seen
    assert book.count("busy", now + 6 * MIN) == 1
