"""The RNG of a decision depends on its event id (and stream) only: reproducible anywhere."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from arbiter.server.experiments import rng_for
from arbiter.server.loop import draw


def draws(event_id: str, stream: str = "") -> list[float]:
    return rng_for(event_id, stream).random(8).tolist()


def test_the_same_event_id_draws_the_same_whatever_came_before_and_on_any_thread() -> None:
    first = draws("event-1")
    draws("event-2")  # re-seeds this thread's generator in between
    with ThreadPoolExecutor(1) as pool:
        elsewhere = pool.submit(draws, "event-1").result()

    assert draws("event-1") == first == elsewhere


def test_event_ids_and_streams_draw_independently() -> None:
    seen = {tuple(draws(f"event-{i}", stream)) for i in range(50) for stream in ("", "shadow")}
    assert len(seen) == 100


def test_draw_follows_the_distribution_and_never_picks_a_zero() -> None:
    distribution = (0.0, 0.2, 0.0, 0.8)
    picks = [draw(distribution, rng_for(f"e{i}")) for i in range(4000)]
    counts = np.bincount(picks, minlength=4)

    assert counts[0] == counts[2] == 0
    # binomial(4000, 0.2): sd = sqrt(4000 * 0.2 * 0.8) ~ 25.3; 5 sd either side
    assert abs(counts[1] - 800) < 5 * 25.3
