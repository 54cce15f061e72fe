"""Running a client workload against ``--bootstrap`` or against a cluster it starts for itself, once or
``--repeat`` times (on the same cluster)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from raftkafka.bench.local_cluster import own_cluster
from raftkafka.bench.result import BenchResult
from raftkafka.bench.settings import BenchSettings

Workload = Callable[..., BenchResult]
Result = TypeVar("Result")


def run_workload(workload: Callable[..., Result], settings: BenchSettings, *, show_progress: bool) -> Result:
    """Validate ``settings`` and run ``workload``; with ``settings.cluster`` on a fresh cluster, always removed."""
    return run_repeated(workload, settings, show_progress=show_progress, repeat=1)[0]


def run_repeated(
    workload: Callable[..., Result], settings: BenchSettings, *, show_progress: bool, repeat: int
) -> list[Result]:
    """Validate ``settings`` and run ``workload`` ``repeat`` times in a row; with ``settings.cluster`` all runs share
    one fresh cluster, always removed, whose processes are the ``servers`` the runs report the CPU of."""
    settings.validate()
    if settings.cluster is None:
        return [workload(settings, show_progress=show_progress) for _ in range(repeat)]
    with own_cluster(settings.cluster, broker_args=settings.broker_args()) as cluster:
        own = replace(settings, bootstrap=cluster.bootstrap, servers=tuple(cluster.processes()))
        return [workload(own, show_progress=show_progress) for _ in range(repeat)]
