"""The tail's poll interval: it backs off while polls find nothing and is back at once when one
folds something (``server.fold.next_wait``), which bounds the fold lag after a quiet spell by
``IDLE_POLLS`` intervals."""

from __future__ import annotations

import pytest

from arbiter.server.fold import IDLE_POLLS, next_wait


def test_empty_polls_double_the_wait_up_to_the_cap_and_a_folding_poll_resets_it() -> None:
    interval, wait, waits = 0.02, 0.02, []
    for _ in range(5):
        wait = next_wait(wait, interval, folded=0)
        waits.append(wait)
    assert waits == pytest.approx([0.04, 0.06, 0.06, 0.06, 0.06])
    assert max(waits) == pytest.approx(IDLE_POLLS * interval)  # the lag bound after quiet
    assert next_wait(wait, interval, folded=3) == interval
    assert next_wait(interval, interval, folded=1) == interval  # a steady stream: every 20 ms
