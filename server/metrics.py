"""Prometheus metrics (``arbiter serve --metrics-listen HOST:PORT``): every definition, the
recorders the hot path calls, the gauges read from the server's state, and the HTTP endpoint.

The names are a contract (README: Metrics). Labels take only configured names (experiments,
variants) and gRPC method and status names — never a value a request sends — so the number of
series is bounded by the configuration.

Counters (under ``--processes`` the supervisor sums them over every process, dead ones too):

- ``arbiter_decisions_total{experiment,variant}`` — decisions logged, by the serving variant. A
  retried event id answered with the decision already logged is not counted again.
- ``arbiter_rewards_total{experiment,variant,learned}`` — rewards stored, by the variant that
  served the decision; ``learned="true"`` when the reward counts (the RewardResponse's
  ``learned``), ``"false"`` when it is stored for offline evaluation only (late, or a second
  reward of a ``first`` experiment). A retried reward id is not counted again.
- ``arbiter_learned_events_total{experiment,variant}`` — learned events this process committed
  (a reward that took its window, a window the coordinator closed with the default reward or
  the sum), by the serving variant. Summed over processes: the learned events of the log.

Histograms:

- ``arbiter_rpc_seconds{method,code}`` — each call of Arbiter's services (``DecisionService``,
  ``ExperimentService``) from the guard's entry to its answer, by the full method name
  (``/arbiter.v1.DecisionService/Choose``) and status code name (``OK``,
  ``INVALID_ARGUMENT``, ...). Not in it: calls gRPC refuses before a handler runs
  (``--max-concurrent-rpcs``), the health and reflection services.
- ``arbiter_commit_seconds`` — each group-commit transaction that committed (begin to commit).
- ``arbiter_fold_lag_seconds`` — for each learned event another process committed: from its
  commit (``learned_at``) to this process folding it (the tail polls every 20 ms). A single
  process folds its own events at once and observes nothing here.

Gauges (``--processes``: the mode in brackets says how the processes' values combine; only live
processes count):

- ``arbiter_writer_queue_depth`` — writes waiting for the group commit (max: the fullest).
- ``arbiter_writer_queue_capacity`` — ``--max-queued-writes``: a call finding the queue that
  full is answered RESOURCE_EXHAUSTED (max).
- ``arbiter_database_up`` — 1 while the database answers; 0 from a failed transaction or probe
  (or a deleted SQLite file) until it answers again (min: 0 when any process cannot reach it).
- ``arbiter_model_position{experiment,variant}`` — seq of the last learned event folded into the
  variant's model (min: what every process has folded).
- ``arbiter_chosen_probability_mean{experiment,variant}`` — exploration health: the mean, over
  the last :data:`WINDOW` decisions the variant served here, of p, the logged probability of the
  chosen action (max). Near 1: the policy has become deterministic and nothing else is tried
  (with K offered actions, uniform exploration gives 1/K).
- ``arbiter_effective_sample_fraction{experiment,variant}`` — exploration health over the same
  window: with importance weights w = 1/p, Kish's effective sample size as a share of the n
  decisions, ESS/n = (Σw)² / (n·Σw²) ∈ (0, 1] (min). The weights are those of an off-policy
  estimate of a policy uniform over the offered actions (ESS/n is scale-free, so 1/p and
  1/(K·p) give the same); 1 when every decision had the same probability, near 0 when a few
  decisions drawn with tiny probabilities carry most of the weight — offline evaluation from
  this log then has a high variance. It is 1 for a deterministic policy too: read it with the
  mean probability.
- ``arbiter_sample_ratio_p_value{experiment}`` — the live report's sample-ratio check (units per
  serving variant since the current set-up, against the traffic weights; ``server.report``):
  its p-value, computed by the coordinator every :data:`SAMPLE_RATIO_SECONDS` (min). A
  mismatch is p < 0.001.
- ``arbiter_drift_alarm{experiment,variant,kind}`` — 1 while a drift alarm of the variant
  (:mod:`server.drift`) is raised: ``reward_drop`` (its learned rewards dropped, ever) or
  ``exploration_collapse`` (its recent distributions are nearly deterministic, now).

Under ``--processes`` prometheus-client's multi-process mode holds the values: the supervisor
sets ``PROMETHEUS_MULTIPROC_DIR`` to a fresh folder before it forks, each server writes its
values into its own files there (the gauges at every tick of its maintenance thread, 0.5 s),
and the supervisor serves the sum (:func:`aggregated`), dropping a dead server's gauges
(:func:`process_dead`). A single server refreshes its gauges when scraped and also serves the
``process_*`` metrics (CPU, memory, file descriptors).

Cost on the hot path: one dict lookup of a cached child per record (``labels()`` is not called
per call), a counter increment, a deque append; a histogram observation per call.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, multiprocess, values
from prometheus_client.exposition import start_http_server
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from prometheus_client.metrics_core import Metric

    from arbiter.server.drift import Alarm
    from arbiter.server.experiments import Experiment

log = logging.getLogger(__name__)

MULTIPROCESS_ENV = "PROMETHEUS_MULTIPROC_DIR"
WINDOW = 1000  # decisions per variant behind the exploration gauges
SAMPLE_RATIO_SECONDS = 60.0  # how often the coordinator runs the sample-ratio check
# Choose answers in ~0.3-1 ms; an admin call or a commit under load takes longer.
RPC_BUCKETS = (0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
               2.5, 5.0, 10.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def shared_directory() -> str | None:
    """The multi-process folder when this process records for a supervisor, else None."""
    return os.environ.get(MULTIPROCESS_ENV) or None


@dataclass(slots=True)
class _Served:
    """One (experiment, variant)'s decision counter and its window of chosen probabilities."""

    counter: Counter
    window: deque[float] = field(default_factory=lambda: deque(maxlen=WINDOW))


@dataclass(frozen=True, slots=True)
class Exploration:
    """Exploration health of n decisions: mean chosen probability and ESS/n (module doc)."""

    n: int
    mean_probability: float
    effective_sample_fraction: float

    @classmethod
    def of(cls, probabilities: Iterable[float]) -> Exploration | None:
        """From the chosen probabilities (each in (0, 1]); None for none."""
        ps = list(probabilities)
        if not ps:
            return None
        weights = [1.0 / p for p in ps]
        total = sum(weights)
        return cls(len(ps), sum(ps) / len(ps), total * total / (len(ps) * sum(w * w for w in weights)))


class Metrics:
    """Every metric of one server, in a registry of its own (tests run many servers in one
    process) — or, under a supervisor, in the multi-process files."""

    def __init__(self, *, shared: bool = False) -> None:
        """``shared``: record into the supervisor's folder (:func:`shared_directory`)."""
        self.shared = shared
        if shared and (shared_directory() is None or not _multiprocess_values()):
            raise RuntimeError(f"shared metrics need {MULTIPROCESS_ENV} set before prometheus_client "
                               "is imported")
        self.registry = CollectorRegistry()
        r = self.registry
        self._refresh: Callable[[], None] = lambda: None
        if not shared:
            _OnScrape(self, r)  # first: the gauges below are collected after it ran
        self.decisions = Counter("arbiter_decisions", "Decisions logged, by the serving variant.",
                                 ["experiment", "variant"], registry=r)
        self.rewards = Counter("arbiter_rewards", "Rewards stored, by the variant that served the "
                               "decision and whether the reward counts (learned).",
                               ["experiment", "variant", "learned"], registry=r)
        self.learned_events = Counter("arbiter_learned_events", "Learned events this process "
                                      "committed, by the serving variant.",
                                      ["experiment", "variant"], registry=r)
        self.rpc_seconds = Histogram("arbiter_rpc_seconds", "Calls of Arbiter's services, from "
                                     "the guard's entry to the answer, by method and status code.",
                                     ["method", "code"], buckets=RPC_BUCKETS, registry=r)
        self.commit_seconds = Histogram("arbiter_commit_seconds", "Group-commit transactions "
                                        "that committed, begin to commit.",
                                        buckets=COMMIT_BUCKETS, registry=r)
        self.fold_lag_seconds = Histogram("arbiter_fold_lag_seconds", "Other processes' learned "
                                          "events: from their commit to this process folding them.",
                                          buckets=LAG_BUCKETS, registry=r)
        self.queue_depth = Gauge("arbiter_writer_queue_depth", "Writes waiting for the group "
                                 "commit.", registry=r, multiprocess_mode="livemax")
        self.queue_capacity = Gauge("arbiter_writer_queue_capacity", "Writes the group-commit "
                                    "queue holds (--max-queued-writes).", registry=r,
                                    multiprocess_mode="livemax")
        self.database_up = Gauge("arbiter_database_up", "1 while the database answers, else 0.",
                                 registry=r, multiprocess_mode="livemin")
        self.model_position = Gauge("arbiter_model_position", "Seq of the last learned event "
                                    "folded into the variant's model.", ["experiment", "variant"],
                                    registry=r, multiprocess_mode="livemin")
        self.chosen_probability = Gauge("arbiter_chosen_probability_mean", "Mean logged "
                                        f"probability of the chosen action, last {WINDOW} "
                                        "decisions of the variant.", ["experiment", "variant"],
                                        registry=r, multiprocess_mode="livemax")
        self.effective_sample = Gauge("arbiter_effective_sample_fraction", "(sum w)^2 / (n sum "
                                      f"w^2), w = 1/p of the chosen action, last {WINDOW} "
                                      "decisions of the variant.", ["experiment", "variant"],
                                      registry=r, multiprocess_mode="livemin")
        self.sample_ratio = Gauge("arbiter_sample_ratio_p_value", "p-value of the live report's "
                                  "sample-ratio check (mismatch below 0.001).", ["experiment"],
                                  registry=r, multiprocess_mode="livemin")
        self.drift_alarm = Gauge("arbiter_drift_alarm", "1 while a drift alarm of the variant is "
                                 "raised: kind reward_drop (its learned rewards dropped: "
                                 "Page-Hinkley, ever) or exploration_collapse (now).",
                                 ["experiment", "variant", "kind"], registry=r,
                                 multiprocess_mode="livemax")
        self._served: dict[tuple[str, str], _Served] = {}
        self._rewarded: dict[tuple[str, str, bool], Counter] = {}
        self._learned: dict[tuple[str, str], Counter] = {}
        if not self.shared:
            ProcessCollector(registry=r)

    # ------------------------------------------------------------------ the hot path
    def decided(self, experiment: str, variant: str, probability: float) -> None:
        """A decision logged: ``probability`` of its chosen action."""
        served = self._served.get((experiment, variant))
        if served is None:
            served = self._served.setdefault(
                (experiment, variant), _Served(self.decisions.labels(experiment, variant)))
        served.counter.inc()
        served.window.append(probability)

    def rewarded(self, experiment: str, variant: str, learned: bool) -> None:
        counter = self._rewarded.get((experiment, variant, learned))
        if counter is None:
            counter = self._rewarded.setdefault(
                (experiment, variant, learned),
                self.rewards.labels(experiment, variant, "true" if learned else "false"))
        counter.inc()

    def learned(self, experiment: str, variant: str) -> None:
        counter = self._learned.get((experiment, variant))
        if counter is None:
            counter = self._learned.setdefault((experiment, variant),
                                               self.learned_events.labels(experiment, variant))
        counter.inc()

    def rpc(self, method: str) -> Callable[[str, float], None]:
        """``observe(code, seconds)`` for the calls of ``method``: its children cached by code."""
        children: dict[str, Histogram] = {}

        def observe(code: str, seconds: float) -> None:
            child = children.get(code)
            if child is None:
                child = children.setdefault(code, self.rpc_seconds.labels(method, code))
            child.observe(seconds)

        return observe

    def committed(self, seconds: float) -> None:
        self.commit_seconds.observe(seconds)

    def lagged(self, seconds: float) -> None:
        self.fold_lag_seconds.observe(seconds)

    # ------------------------------------------------------------------ gauges
    def on_refresh(self, refresh: Callable[[], None]) -> None:
        """``refresh()`` sets the gauges read from the server's state (:meth:`state`): called
        before each scrape (one server) or at every maintenance tick (under a supervisor)."""
        self._refresh = refresh

    def refresh(self) -> None:
        self._refresh()
        for (experiment, variant), served in list(self._served.items()):
            health = Exploration.of(tuple(served.window))  # a copy: the event loop appends
            if health is not None:
                self.chosen_probability.labels(experiment, variant).set(health.mean_probability)
                self.effective_sample.labels(experiment, variant).set(
                    health.effective_sample_fraction)

    def state(self, *, queue_depth: int, queue_capacity: int, database_up: bool,
              experiments: Iterable[Experiment]) -> None:
        """The gauges of the server's state."""
        self.queue_depth.set(queue_depth)
        self.queue_capacity.set(queue_capacity)
        self.database_up.set(1 if database_up else 0)
        for experiment in experiments:
            for variant in list(experiment.variants.values()):
                self.model_position.labels(experiment.name, variant.name).set(variant.position)

    def drift(self, experiment: str, alarms: Mapping[str, Alarm]) -> None:
        """The drift gauges of ``experiment``'s variants (``Stats.alarms``)."""
        for variant, alarm in alarms.items():
            self.drift_alarm.labels(experiment, variant, "reward_drop").set(
                1 if alarm.reward_drop_seq is not None else 0)
            self.drift_alarm.labels(experiment, variant, "exploration_collapse").set(
                1 if alarm.collapse_seq is not None else 0)

    def sample_ratio_checked(self, experiment: str, p_value: float) -> None:
        self.sample_ratio.labels(experiment).set(p_value)


class _OnScrape(Collector):
    """Registered first: a scrape of one server refreshes the gauges before they are read."""

    def __init__(self, metrics: Metrics, registry: CollectorRegistry) -> None:
        self._metrics = metrics
        registry.register(self)

    def collect(self) -> Iterable[Metric]:
        try:
            self._metrics.refresh()
        except Exception:  # a scrape still answers with what the gauges held
            log.exception("refreshing the metrics failed")
        return ()


class Endpoint:
    """Prometheus text over HTTP on ``HOST:PORT`` (any path; port 0 picks a free one), served
    by prometheus-client's WSGI server on a daemon thread."""

    def __init__(self, listen: str, registry: CollectorRegistry) -> None:
        host, _, port = listen.rpartition(":")
        self._server: WSGIServer
        self._server, self._thread = start_http_server(
            int(port), addr=host.removeprefix("[").removesuffix("]"), registry=registry)
        bound = self._server.server_address[1]
        self.address = f"{host}:{bound}"

    def fileno(self) -> int:
        """The listening socket (a forked child closes its copy)."""
        return self._server.socket.fileno()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


def aggregated(directory: str) -> CollectorRegistry:
    """The registry a supervisor serves: every server's values in ``directory``, combined."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return registry


def process_dead(directory: str, pid: int) -> None:
    """Drop the gauges of a server that exited (its counters and histograms stay in the sums)."""
    multiprocess.mark_process_dead(pid, path=directory)  # type: ignore[no-untyped-call]


def _multiprocess_values() -> bool:
    """Whether prometheus_client writes values into the multi-process files (decided when it
    was first imported, from the environment)."""
    return values.ValueClass is not values.MutexValue

