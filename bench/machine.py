"""What every benchmark prints about the machine it ran on."""

from __future__ import annotations

import contextlib
import os
import platform
from pathlib import Path


def machine_line() -> str:
    """``Machine: 2 cores (AMD EPYC …), 23.5 GiB RAM; Linux 6.x; Python 3.11.7``."""
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, ValueError, IndexError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem = f", {int(line.split()[1]) / 1024**2:.1f} GiB RAM"
                break
    return (
        f"Machine: {os.cpu_count()} cores ({cpu}){mem}; {platform.system()} {platform.release()}; "
        f"Python {platform.python_version()}"
    )
