"""The benchmark's CPU-by-thread measurement (``benchmarks/bench.py --threads``)."""

from __future__ import annotations

import threading
import time

from benchmarks.bench import ThreadCPU


def _spin(seconds: float) -> None:
    end = time.thread_time() + seconds
    while time.thread_time() < end:
        pass


def test_thread_cpu_gives_each_role_the_cpu_its_threads_spent():
    """A thread named as the decode thread spins 0.6 s of CPU, then a detector worker 0.3 s,
    while the main thread only waits: each role gets its own seconds (the kernel counts in
    10-ms ticks; a thread that ends loses at most one sampling interval)."""
    with ThreadCPU(interval=0.02) as cpu:
        for name, seconds in (("screenalytics-decode", 0.6), ("model-call_0", 0.3)):
            worker = threading.Thread(target=_spin, args=(seconds,), name=name)
            worker.start()
            worker.join()
    roles = cpu.by_role()
    assert 0.5 <= roles["decode"] <= 0.7, roles
    assert 0.2 <= roles["model-call"] <= 0.4, roles
    assert roles.get("main", 0.0) < 0.15, roles
    assert "native" not in roles or roles["native"] < 0.1, roles
