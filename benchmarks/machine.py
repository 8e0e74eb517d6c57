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
