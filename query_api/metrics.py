"""Prometheus text exposition of the API's own counters and the archive's progress.

Request latency is a histogram per endpoint (up to the answer's audit record
committed, whose wait the client shares; time to the first byte for streamed
answers); the archive's progress comes from gauges read at scrape
time: the log's head, and how far each projection and the index lag behind.
"""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterable
from itertools import accumulate
from typing import NamedTuple

class Family(NamedTuple):
    """One metric read at scrape time: name, help text, (labels, value) samples."""

    name: str
    help: str
    samples: list[tuple[dict[str, str], float]]


BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class RequestMetrics:
    """Counts and latency histograms of requests, per endpoint and status."""

    def __init__(self):
        self._lock = threading.Lock()
        self._buckets: dict[str, list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self._sum: dict[str, float] = defaultdict(float)
        self._count: dict[str, int] = defaultdict(int)
        self._status: dict[tuple[str, int], int] = defaultdict(int)

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        # Counted in the first bucket it falls into only; the exposition's cumulative counts are summed when scraped.
        first = bisect_left(BUCKETS, seconds)
        with self._lock:
            if first < len(BUCKETS):
                self._buckets[endpoint][first] += 1
            self._sum[endpoint] += seconds
            self._count[endpoint] += 1
            self._status[(endpoint, status)] += 1

    def render(self, families: Iterable[Family]) -> str:
        """The exposition text of ``families`` (read at scrape time) and of the requests seen."""
        lines: list[str] = []
        for family in families:
            kind = "counter" if family.name.endswith("_total") else "gauge"
            lines += [f"# HELP {family.name} {family.help}", f"# TYPE {family.name} {kind}"]
            for labels, value in family.samples:
                label_text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
                lines.append(f"{family.name}{{{label_text}}} {_number(value)}" if labels else f"{family.name} {_number(value)}")
        with self._lock:
            lines += [
                "# HELP chat_archive_api_requests_total HTTP requests answered, by endpoint and status.",
                "# TYPE chat_archive_api_requests_total counter",
            ]
            for (endpoint, status), count in sorted(self._status.items()):
                lines.append(f'chat_archive_api_requests_total{{endpoint="{_label(endpoint)}",status="{status}"}} {count}')
            lines += [
                "# HELP chat_archive_api_request_duration_seconds Time to answer (first byte of streamed answers).",
                "# TYPE chat_archive_api_request_duration_seconds histogram",
            ]
            for endpoint in sorted(self._count):
                label = _label(endpoint)
                for bound, count in zip(BUCKETS, accumulate(self._buckets[endpoint])):
                    lines.append(f'chat_archive_api_request_duration_seconds_bucket{{endpoint="{label}",le="{bound}"}} {count}')
                total = self._count[endpoint]
                lines.append(f'chat_archive_api_request_duration_seconds_bucket{{endpoint="{label}",le="+Inf"}} {total}')
                lines.append(f'chat_archive_api_request_duration_seconds_sum{{endpoint="{label}"}} {self._sum[endpoint]:.6f}')
                lines.append(f'chat_archive_api_request_duration_seconds_count{{endpoint="{label}"}} {total}')
        return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    if isinstance(value, int) or (math.isfinite(value) and value == int(value)):
        return str(int(value))
    return repr(float(value))


def _label(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
