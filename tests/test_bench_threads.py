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
    """A thread named as the decode thread spins 0.6 s of CPU and a detector worker 0.3 s, while
    the main thread only waits: each role gets its own seconds (the kernel counts in 10-ms
    ticks). The workers stay alive until the block's last sample, so that what they spent does
    not depend on when the sampler, busy or not, last looked at them."""
    release = threading.Event()
    spun = []

    def spin_then_wait(seconds: float, done: threading.Event) -> None:
        _spin(seconds)
        done.set()
        release.wait()

    workers = []
    with ThreadCPU(interval=0.02) as cpu:
        for name, seconds in (("screenalytics-decode", 0.6), ("model-call_0", 0.3)):
            spun.append(threading.Event())
            workers.append(threading.Thread(target=spin_then_wait, args=(seconds, spun[-1]),
                                            name=name))
            workers[-1].start()
        for done in spun:
            done.wait()
    release.set()
    for worker in workers:
        worker.join()
    roles = cpu.by_role()
    assert 0.5 <= roles["decode"] <= 0.7, roles
    assert 0.2 <= roles["model-call"] <= 0.4, roles
    assert roles.get("main", 0.0) < 0.15, roles
    assert "native" not in roles or roles["native"] < 0.1, roles
