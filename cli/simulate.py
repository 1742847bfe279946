"""``arbiter simulate``: synthetic users with a hidden preference model, to watch a server learn.

Each user has a ``country`` (4 values) and a ``device`` (3 values); 5 articles are offered. The
hidden click probability is linear in the one-hot context, per article::

    p(click | country c, device d, article a) = 0.05 + 0.45·[a = fav_country(c)] + 0.35·[a = fav_device(d)]

so a contextual policy can reach up to 0.85 where the favourites agree, while a uniform-random
policy earns the mean of p over the articles (printed as the baseline).
"""

from __future__ import annotations

import sys

import numpy as np
from rich.progress import Progress

from arbiter.client import ArbiterClientError, Connection, DecisionClient

COUNTRIES = ("DE", "FR", "US", "JP")
DEVICES = ("mobile", "desktop", "tablet")
ARTICLES = tuple(f"article-{i}" for i in range(5))


class HiddenPreferences:
    """The simulated users' click model (seeded)."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.fav_country = rng.integers(len(ARTICLES), size=len(COUNTRIES))
        self.fav_device = rng.integers(len(ARTICLES), size=len(DEVICES))

    def click_probability(self, country: int, device: int, article: int) -> float:
        return float(0.05 + 0.45 * (article == self.fav_country[country])
                     + 0.35 * (article == self.fav_device[device]))

    def uniform_rate(self) -> float:
        """Expected reward of choosing uniformly at random, users uniform over the contexts."""
        return float(np.mean([self.click_probability(c, d, a) for c in range(len(COUNTRIES))
                              for d in range(len(DEVICES)) for a in range(len(ARTICLES))]))


def run(target: str, experiment: str, events: int, *, seed: int = 0,
        connection: Connection | None = None) -> int:
    """Drive ``events`` Choose + Reward pairs; print the running mean and the summary."""
    if events < 10:
        print("arbiter simulate: --events must be at least 10", file=sys.stderr)
        return 2
    try:
        rewards = _drive(target, experiment, events, HiddenPreferences(seed), seed, connection)
    except ArbiterClientError as error:
        print(f"arbiter simulate: the server answered {error}", file=sys.stderr)
        return 1
    tenth = max(1, events // 10)
    print(f"first 10% mean reward: {rewards[:tenth].mean():.3f}")
    print(f"last 10% mean reward:  {rewards[-tenth:].mean():.3f}")
    print(f"uniform-random rate:   {HiddenPreferences(seed).uniform_rate():.3f}")
    return 0


def _drive(target: str, experiment: str, events: int, model: HiddenPreferences,
           seed: int, connection: Connection | None = None) -> np.ndarray:
    """Rewards ``(events,)`` of simulated users served by the experiment at ``target``."""
    rng = np.random.default_rng(seed + 1)
    rewards = np.zeros(events)
    report_every = max(1, events // 10)
    with (DecisionClient(target, connection=connection) as client,
          Progress(disable=not sys.stdout.isatty()) as bar):
        task = bar.add_task("simulating", total=events)
        for i in range(events):
            country, device = int(rng.integers(len(COUNTRIES))), int(rng.integers(len(DEVICES)))
            choice = client.choose(experiment, unit_id=f"user-{rng.integers(1_000_000)}",
                                   context={"user": {"country": COUNTRIES[country],
                                                     "device": DEVICES[device]}},
                                   actions=list(ARTICLES))
            article = ARTICLES.index(choice.action_id)
            rewards[i] = float(rng.random() < model.click_probability(country, device, article))
            client.reward(choice.event_id, rewards[i])
            running = rewards[: i + 1].mean()
            bar.update(task, advance=1, description=f"mean reward {running:.3f}")
            if not sys.stdout.isatty() and (i + 1) % report_every == 0:
                print(f"{i + 1:>8} events  running mean reward {running:.3f}", flush=True)
    return rewards
