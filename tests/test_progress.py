"""tinlib.progress.track: a tqdm bar on a terminal; else a log line every 30 s of the clock (a fake
clock here, no sleeping) and one at the end."""
import io
import logging

import pytest
from tqdm import tqdm

import tinlib.progress
from tinlib.progress import INTERVAL_S, track


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture
def clock(monkeypatch):
    """The seconds the progress reads; a test moves it with ``clock.now += s``."""

    class Clock:
        now = 1000.0

        def __call__(self) -> float:
            return self.now

    fake = Clock()
    monkeypatch.setattr(tinlib.progress, "monotonic", fake)
    return fake


@pytest.fixture
def lines(caplog):
    """The messages logged on tinlib's logger (it stops propagating once a command has set up logging)."""
    logger = logging.getLogger("tinlib")
    logger.addHandler(caplog.handler)
    caplog.set_level(logging.INFO, logger="tinlib")
    yield lambda: [r.getMessage() for r in dict.fromkeys(caplog.records)]
    logger.removeHandler(caplog.handler)


def test_without_a_terminal_a_line_every_30_s_and_one_at_the_end(clock, lines):
    assert INTERVAL_S == 30
    stream = io.StringIO()
    seen = []
    for item in track(range(10), desc="scanning", unit="folders", file=stream):
        seen.append(item)
        clock.now += 10  # each item takes 10 s: 30 s have passed after items 3, 6 and 9
    assert seen == list(range(10)) and stream.getvalue() == ""
    assert lines() == ["scanning: 0/10 folders", "scanning: 3/10 folders", "scanning: 6/10 folders",
                       "scanning: 9/10 folders", "scanning: 10/10 folders in 100.0 s"]


def test_a_line_only_once_30_s_have_passed_since_the_last(clock, lines):
    with track(total=4, desc="extracting", unit="videos", file=io.StringIO()) as bar:
        for step in (29.9, 0.2, 29.0, 1.0):
            clock.now += step
            bar.update()
    # 29.9 s: too early; 30.1 s: a line; 59.1 s: 29 s after it, too early; the 4th is the last: closing's line
    assert lines() == ["extracting: 0/4 videos", "extracting: 2/4 videos", "extracting: 4/4 videos in 60.1 s"]


def test_updates_without_a_total_and_close_once(clock, lines):
    bar = track(desc="indexing", unit="entries", file=io.StringIO())
    bar.update(5)
    clock.now += 31
    bar.update(2)
    bar.close()
    bar.close()
    assert lines() == ["indexing: 0 entries", "indexing: 7 entries", "indexing: 7 entries in 31.0 s"]


def test_a_terminal_gets_a_tqdm_bar(lines):
    stream = Terminal()
    bar = track(range(3), desc="checking z", unit="folders", file=stream)
    assert isinstance(bar, tqdm)
    assert list(bar) == [0, 1, 2]
    assert "checking z" in stream.getvalue() and "3/3" in stream.getvalue() and lines() == []


def test_disabled_shows_nothing(lines):
    stream = Terminal()
    with track(total=2, desc="checking z", unit="folders", enabled=False, file=stream) as bar:
        bar.update(2)
    assert list(track([1, 2], desc="q", enabled=False, file=io.StringIO())) == [1, 2]
    assert stream.getvalue() == "" and lines() == []
