"""Metrics, health and logs of a worker process.

The runtime starts everything with ``Observability.start(settings)`` and
reports through ``.metrics`` (counts, gauges, latencies) and ``.health``
(loop progress); ``close()`` stops the HTTP endpoint.
"""

from dataclasses import dataclass

from worker.observe.health import HealthReport, HealthState
from worker.observe.http import ObserveServer, serve
from worker.observe.metrics import Metrics

__all__ = ["HealthReport", "HealthState", "Metrics", "ObserveServer",
           "Observability", "serve"]


@dataclass
class Observability:
    metrics: Metrics
    health: HealthState
    server: ObserveServer | None = None

    @classmethod
    def start(cls, settings, worker_id: str | None = None) -> "Observability":
        """Metrics and health for these settings, served on METRICS_PORT
        unless it is 0. Raises ConfigError when the port cannot be bound.

        ``worker_id`` labels the info metric when the settings name none.
        """
        worker_id = worker_id or settings.worker_id or ""
        metrics = Metrics(worker_id, settings.stream_name)
        health = HealthState.for_lease_duration(settings.lease_duration_s)
        server = None
        if settings.metrics_port:
            server = serve(settings.metrics_host, settings.metrics_port,
                           metrics, health)
        return cls(metrics, health, server)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
            self.server = None
