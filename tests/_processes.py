"""Which processes a test's build left behind (the flow must stop every tool it started)."""

import os
from pathlib import Path

__all__ = ["processes_in"]


def processes_in(directory):
    """Processes whose working directory is under ``directory``."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")).is_relative_to(directory):
                found.append(int(proc.name))
        except OSError:
            pass
    return found
