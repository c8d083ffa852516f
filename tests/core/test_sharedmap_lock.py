"""core/sharedmap.locked: a free lock is taken without letting go of the GIL (so no other thread
of the process can step in while a worker holds the lock others wait for), a held one is waited
for, and it excludes other open files of the same lock file as flock does."""

from __future__ import annotations

import fcntl
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcove.core.sharedmap import locked


@pytest.fixture
def long_switch_interval() -> Iterator[None]:
    """A thread waiting for the GIL gets it only when the holder lets go of it by itself."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(0.5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def test_a_free_lock_is_taken_without_letting_go_of_the_gil(tmp_path: Path, long_switch_interval: None) -> None:
    fd = os.open(tmp_path / "map", os.O_RDWR | os.O_CREAT, 0o600)
    steps = [0]
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            steps[0] += 1

    spinner = threading.Thread(target=spin)
    spinner.start()
    try:
        time.sleep(0.05)  # the spinner runs once; now the GIL is ours again until we let go
        before = steps[0]
        for _ in range(2000):
            with locked(fd):
                pass
        during = steps[0] - before
    finally:
        stop.set()
        spinner.join()
        os.close(fd)
    # fcntl.flock lets go of the GIL in every call: the spinner would have run thousands of steps
    assert during == 0


def test_a_held_lock_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "map"
    mine = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    other = os.open(path, os.O_RDWR)  # another open file, as another worker has
    fcntl.flock(other, fcntl.LOCK_EX)
    got = threading.Event()

    def take() -> None:
        with locked(mine):
            got.set()

    t = threading.Thread(target=take)
    t.start()
    try:
        assert not got.wait(0.2)
        fcntl.flock(other, fcntl.LOCK_UN)
        assert got.wait(5)
        t.join()
        # released again: the other side can take it without waiting
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        fcntl.flock(other, fcntl.LOCK_UN)
        # a shared lock admits another shared holder, not an exclusive one
        with locked(mine, fcntl.LOCK_SH):
            fcntl.flock(other, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(other, fcntl.LOCK_UN)
            with pytest.raises(BlockingIOError):
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(mine)
        os.close(other)
