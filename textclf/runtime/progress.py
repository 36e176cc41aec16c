"""Progress for long work: a bar in a terminal, one-line JSON every few seconds otherwise (job logs)."""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any


def is_interactive() -> bool:
    return sys.stderr.isatty()


class Progress:
    """`update(n, **fields)` adds n units of work; fields (loss, padding efficiency, ...) ride along.

    in_ray_worker: draw the bar with Ray's tqdm, which renders on the driver's terminal.
    """

    def __init__(
        self,
        task: str,
        total: int | None,
        unit: str = "rows",
        interactive: bool | None = None,
        interval_s: float = 10.0,
        in_ray_worker: bool = False,
        sink=None,
    ) -> None:
        self.task, self.total, self.unit = task, total, unit
        self.sink = sink or print_json  # where the JSON records go (a JsonRelay's put, in a Ray worker)
        self.interactive = is_interactive() if interactive is None else interactive
        self.interval_s = interval_s
        self.done = 0
        self.fields: dict[str, Any] = {}
        self.started = self._last_emit = time.monotonic()
        self._bar = None
        if self.interactive:
            if in_ray_worker:
                from ray.experimental.tqdm_ray import tqdm
            else:
                from tqdm import tqdm
            self._bar = tqdm(total=total, desc=task, unit=unit)

    def update(self, n: int, **fields: Any) -> None:
        self.done += n
        self.fields.update(fields)
        if self._bar is not None:
            self._bar.update(n)
            # Ray's tqdm has no postfix, so the fields ride in the description, about once a second
            if fields and time.monotonic() - self._last_emit >= 1.0:
                self._last_emit = time.monotonic()
                self._describe()
        elif time.monotonic() - self._last_emit >= self.interval_s:
            self.emit()

    def _describe(self) -> None:
        self._bar.set_description(" ".join([self.task] + [f"{k}={_short(v)}" for k, v in self.fields.items()]))

    def emit(self, event: str = "progress") -> None:
        self._last_emit = now = time.monotonic()
        elapsed = now - self.started
        rate = self.done / elapsed if elapsed > 0 else 0.0
        record = {
            "event": event,
            "task": self.task,
            "done": self.done,
            "total": self.total,
            f"{self.unit}_per_s": round(rate, 1),
            "elapsed_s": round(elapsed, 1),
        }
        if self.total and rate > 0:
            record["eta_s"] = round(max(self.total - self.done, 0) / rate, 1)
        record.update({k: _short(v) for k, v in self.fields.items()})
        self.sink(record)

    def close(self) -> None:
        if self._bar is not None:
            self._describe()  # the last fields, not those of up to a second before
            self._bar.close()
        else:
            self.emit("done")


def print_json(record: dict) -> None:
    print(json.dumps(record), file=sys.stderr, flush=True)


class JsonRelay:
    """Carries JSON progress records from Ray workers to this process's stderr, one plain line each.
    What a Ray worker prints reaches the driver prefixed with "(RayTrainWorker pid=...)" and colour
    codes, which `jq` and log pipelines cannot read. Workers `put` records on a Ray queue; a thread
    here prints them until the block ends (and Ray is still up: nothing may run during its shutdown)."""

    def __init__(self) -> None:
        from ray.util.queue import Queue

        self.queue = Queue(actor_options={"num_cpus": 0})
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._relay, name="json-relay", daemon=True)

    def __enter__(self) -> JsonRelay:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._thread.join()
        self.queue.shutdown()

    def _relay(self) -> None:
        from ray.util.queue import Empty

        while True:
            try:
                print_json(self.queue.get(timeout=0.5))
            except Empty:
                if self._done.is_set():
                    return


def _short(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value
