"""Whether the Hugging Face hub answers: without a network its libraries retry for ~25 s before failing,
so textclf probes once and then reads only their local cache."""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.parse
import urllib.request

HUB_PROBE_TIMEOUT_S = 3.0


def hub_reachable(endpoint: str) -> bool:
    if urllib.request.getproxies().get("https"):
        return True  # only the proxy knows; let the library try
    url = urllib.parse.urlsplit(endpoint)
    ok = threading.Event()

    def probe() -> None:
        with (
            contextlib.suppress(OSError),
            socket.create_connection((url.hostname, url.port or 443), HUB_PROBE_TIMEOUT_S),
        ):
            ok.set()

    # A thread, because name resolution ignores socket timeouts.
    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(HUB_PROBE_TIMEOUT_S)
    return ok.is_set()
