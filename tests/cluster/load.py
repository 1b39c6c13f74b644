"""Traffic as SDKs behind a load balancer send it: single events and batches, every event with a
client id, spread over every node's proxy; a request that fails is retried with the same ids
(on the next proxy) until it is acknowledged. Records what was sent, acknowledged and answered."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from typing import Any

import httpx

from tests.conftest import Creds


class Traffic:
    def __init__(self, urls: list[str], creds: Creds, senders: int = 3, batch: int = 20) -> None:
        self.urls = list(urls)
        self.creds = creds
        self.batch = batch
        self.sent: set[str] = set()
        self.acked: set[str] = set()
        self.statuses: Counter[int | str] = Counter()
        self.failures = 0
        # refusals (429/503) that did not say when to come back
        self.no_retry_after = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(w,), daemon=True) for w in range(senders)]

    def set_urls(self, urls: list[str]) -> None:
        with self.lock:
            self.urls = list(urls)

    def _post(self, client: httpx.Client, url: str, path: str, body: Any) -> httpx.Response | None:
        try:
            r = client.post(f"{url}{path}", json=body, headers=self.creds.write_headers())
        except httpx.HTTPError as exc:
            with self.lock:
                self.statuses[type(exc).__name__] += 1
            return None
        with self.lock:
            self.statuses[r.status_code] += 1
            if r.status_code in (429, 503) and "retry-after" not in r.headers:
                self.no_retry_after += 1
        return r

    def _send(self, client: httpx.Client, turn: int, ids: list[str], events: list[dict[str, Any]]) -> None:
        """Until acknowledged (or given up at the deadline): one event to ``/track``, more to
        ``/track/batch``, where only the events the reply lists as rejected are sent again."""
        pending = list(range(len(ids)))
        deadline = time.monotonic() + 180
        for attempt in itertools.count():
            if not pending or time.monotonic() > deadline:
                return
            with self.lock:
                url = self.urls[(turn + attempt) % len(self.urls)]
            if len(ids) == 1:
                r = self._post(client, url, "/track", events[0])
                if r is not None and r.status_code == 200:
                    pending = []
            else:
                r = self._post(client, url, "/track/batch", {"events": [events[i] for i in pending]})
                if r is not None and r.status_code == 200:
                    rejected = {x["index"] for x in r.json()["rejected"]}
                    done = [pending[j] for j in range(len(pending)) if j not in rejected]
                    with self.lock:
                        self.acked.update(ids[i] for i in done)
                    pending = [pending[j] for j in sorted(rejected)]
            if not pending and len(ids) == 1:
                with self.lock:
                    self.acked.add(ids[0])
            if pending:
                with self.lock:
                    self.failures += 1
                time.sleep(0.2)

    def _run(self, worker: int) -> None:
        with httpx.Client(timeout=30) as client:
            for turn in itertools.count():
                if self.stopping.is_set():
                    return
                size = 1 if turn % 3 == 0 else self.batch  # a third of the requests are single events
                ids = [f"w{worker}-{turn}-{i}" for i in range(size)]
                events = [
                    {
                        "type": "track",
                        "payload": {"name": "tick", "id": eid, "deviceId": f"dev-{worker}-{(turn + i) % 40}"},
                    }
                    for i, eid in enumerate(ids)
                ]
                with self.lock:
                    self.sent.update(ids)
                self._send(client, worker + turn, ids, events)
                time.sleep(0.02)

    def start(self) -> Traffic:
        for t in self.threads:
            t.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        for t in self.threads:
            t.join(timeout=200)
        assert not any(t.is_alive() for t in self.threads)
