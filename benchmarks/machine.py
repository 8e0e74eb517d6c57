"""The machine a benchmark ran on, printed and saved beside its numbers: the CPU model matters
(the same 2-core sizing has run the quickstart in 26 s on one machine and 48 s on another)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name (Linux), else what the platform module knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def describe() -> str:
    """Architecture, CPU model, cores, Python and the current load average."""
    return (
        f"{platform.machine()} {cpu_model()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load average {os.getloadavg()[0]:.2f}"
    )


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine spent busy since boot (Linux ``/proc/stat``: user, nice,
    system, irq, softirq and steal), so that a run's CPU time counts every process it
    started, Ray's workers included; the difference over a run is its CPU time when nothing
    else runs. Elsewhere, this process's own CPU time."""
    stat = Path("/proc/stat")
    if not stat.is_file():
        import time

        return time.process_time()
    fields = stat.read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")
