"""Fault injection for the reliability tests: inert unless TEXTCLF_FAULTS names a fault.

TEXTCLF_FAULTS="name=value;name=value". Each fault fires at one place in the code (grep its name).
A fault that must fire a limited number of times across processes (an actor that Ray restarts)
takes "FOLDER:N" and counts its firings as files in FOLDER.
"""

from __future__ import annotations

import os

ENV = "TEXTCLF_FAULTS"


def fault(name: str) -> str | None:
    """The value given to fault `name`, or None when it is off."""
    for item in os.environ.get(ENV, "").split(";"):
        key, _, value = item.partition("=")
        if key.strip() == name:
            return value.strip()
    return None


def fire_limited(name: str) -> bool:
    """True (and one firing recorded) while fault `name` ("FOLDER:N") has fired fewer than N times."""
    value = fault(name)
    if value is None:
        return False
    folder, _, times = value.rpartition(":")
    os.makedirs(folder, exist_ok=True)
    for i in range(int(times)):
        try:  # O_EXCL: two processes never take the same firing
            os.close(os.open(os.path.join(folder, f"{name}-{i}"), os.O_CREAT | os.O_EXCL))
            return True
        except FileExistsError:
            continue
    return False


def worker_env() -> dict:
    """runtime_env for Ray tasks and actors, so the faults reach processes that Ray already started."""
    return {"env_vars": {ENV: os.environ[ENV]}} if os.environ.get(ENV) else {}
