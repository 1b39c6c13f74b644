"""A closed-loop HTTP load generator: asyncio + aiohttp or httpx, HTTP/1.1 keep-alive, bounded in count and time.

``concurrency`` workers each own one persistent HTTP/1.1 keep-alive connection (the pool is
``concurrency`` connections wide); each worker sends its next request as soon as its previous one
was answered. Two client back ends:

* ``httpx`` (``--client httpx``): one ``httpx.AsyncClient`` per worker, each limited to one keep-alive
  connection. A single shared ``AsyncClient`` with a 64-connection pool is deliberately *not* used:
  httpcore 1.0's pool rescans every connection (``has_expired`` → anyio ``get_extra_info``) on
  every request, which on the 2-core benchmark VM collapsed to ~60–90 req/s at 64 connections.
  Even one client per worker costs ~1.1–1.6 ms of load-generator CPU per request there, so httpx
  cannot drive much more than ~500–600 req/s from one core.
* ``aiohttp`` (default): one ``ClientSession`` whose connector keeps ``concurrency``
  keep-alive connections; ~0.2–0.3 ms of CPU per request on the same VM (aiohttp ships with Ray).
  Use it when the figure to measure is above what httpx can generate.

A run ends by itself once ``max_requests`` have been issued or ``duration_s`` has passed (requests
in flight then finish, each bounded by the client timeout; a hard stop cancels whatever is left
after ``duration_s + timeout + 10`` s). Latency is measured per request from just before the request
is handed to the client until its whole response body has been read (``time.perf_counter``); only
2xx answers are recorded. The process CPU time spent by the generator is recorded too, so a result
says how much of the 2 cores the generator itself took.

Only loopback targets are accepted: this tool measures a local daemon.

Also usable on its own::

    python -m benchmarks.loadgen http://127.0.0.1:8000 --path /track -c 64 -d 10 \\
        -H event-lens-client-id:ID -H event-lens-client-secret:SECRET \\
        --body '{"type":"track","payload":{"name":"x"}}'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import sys
import time
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
CLIENTS = ("httpx", "aiohttp")
T = TypeVar("T")

# (accepted items, rejected items) read from a 2xx response body
Accept = Callable[[bytes], tuple[int, int]]


def check_loopback(url: str) -> None:
    host = urlsplit(url).hostname
    if host not in LOOPBACK:
        raise ValueError(f"refusing to load {host!r}: benchmarks only target 127.0.0.1")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (nan when empty)."""
    if not sorted_values:
        return math.nan
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return float(sorted_values[k])


def latency_summary(values_ms: Sequence[float]) -> dict[str, float]:
    lat = sorted(values_ms)
    return {
        "p50": round(percentile(lat, 50), 2),
        "p95": round(percentile(lat, 95), 2),
        "p99": round(percentile(lat, 99), 2),
        "max": round(lat[-1], 2) if lat else math.nan,
        "mean": round(sum(lat) / len(lat), 2) if lat else math.nan,
        "n": len(lat),
    }


# --------------------------------------------------------------------------------------------
# client back ends


class Backend(Protocol):
    name: str

    async def request(
        self, worker: int, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]: ...

    async def aclose(self) -> None: ...


class HttpxBackend:
    """One ``httpx.AsyncClient`` (one keep-alive connection) per worker; see the module notes."""

    name = "httpx"

    def __init__(self, base_url: str, concurrency: int, timeout_s: float) -> None:
        import httpx

        self.errors: tuple[type[BaseException], ...] = (httpx.HTTPError,)
        self.clients = [
            httpx.AsyncClient(
                base_url=base_url,
                http1=True,
                http2=False,
                trust_env=False,  # never route through a proxy from the environment
                timeout=httpx.Timeout(timeout_s),
                limits=httpx.Limits(max_connections=1, max_keepalive_connections=1, keepalive_expiry=300),
            )
            for _ in range(concurrency)
        ]

    async def request(
        self, worker: int, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        client = self.clients[worker % len(self.clients)]
        resp = await client.request(method, path, content=body, headers=headers)
        return resp.status_code, resp.content

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self.clients), return_exceptions=True)


class AiohttpBackend:
    """One ``aiohttp.ClientSession`` with a keep-alive connector ``concurrency`` connections wide."""

    name = "aiohttp"

    def __init__(self, base_url: str, concurrency: int, timeout_s: float) -> None:
        import aiohttp

        self.base = base_url.rstrip("/")
        self.session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=concurrency, limit_per_host=concurrency, keepalive_timeout=300
            ),
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            auto_decompress=False,
            trust_env=False,
        )

    async def request(
        self, worker: int, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, bytes]:
        async with self.session.request(method, self.base + path, data=body, headers=headers) as resp:
            return resp.status, await resp.read()

    async def aclose(self) -> None:
        await self.session.close()


def make_backend(kind: str, base_url: str, concurrency: int, timeout_s: float = 30.0) -> Backend:
    check_loopback(base_url)
    if kind == "httpx":
        return HttpxBackend(base_url, concurrency, timeout_s)
    if kind == "aiohttp":
        return AiohttpBackend(base_url, concurrency, timeout_s)
    raise ValueError(f"unknown client {kind!r}; one of {CLIENTS}")


# --------------------------------------------------------------------------------------------
# results


@dataclass
class LoadResult:
    label: str
    client: str
    concurrency: int
    items_per_request: int = 1
    duration_s: float = 0.0
    max_requests: int = 0
    elapsed_s: float = 0.0
    issued: int = 0
    requests: int = 0  # answered, or failed in transport
    ok: int = 0  # 2xx
    items: int = 0  # items (events) the server accepted in 2xx answers
    rejected_items: int = 0  # items reported as rejected inside 2xx answers
    statuses: Counter[int] = field(default_factory=Counter)  # non-2xx status -> count
    errors: Counter[str] = field(default_factory=Counter)  # transport error type -> count
    stopped_by: str = ""
    loadgen_cpu_s: float = 0.0  # CPU time of the generator's process during the run
    latencies_ms: list[float] = field(default_factory=list, repr=False)  # 2xx answers only

    @property
    def rps(self) -> float:
        return self.ok / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def items_per_s(self) -> float:
        return self.items / self.elapsed_s if self.elapsed_s else 0.0

    @property
    def non_2xx(self) -> int:
        return sum(self.statuses.values())

    @property
    def transport_errors(self) -> int:
        return sum(self.errors.values())

    def latency(self, q: float) -> float:
        return percentile(sorted(self.latencies_ms), q)

    def summary(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "client": self.client,
            "concurrency": self.concurrency,
            "items_per_request": self.items_per_request,
            "duration_limit_s": self.duration_s,
            "request_limit": self.max_requests,
            "stopped_by": self.stopped_by,
            "elapsed_s": round(self.elapsed_s, 3),
            "issued": self.issued,
            "requests": self.requests,
            "ok": self.ok,
            "non_2xx": self.non_2xx,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "transport_errors": dict(self.errors),
            "items_accepted": self.items,
            "items_rejected": self.rejected_items,
            "requests_per_s": round(self.rps, 1),
            "items_per_s": round(self.items_per_s, 1),
            "latency_ms": latency_summary(self.latencies_ms),
            "loadgen_cpu_s": round(self.loadgen_cpu_s, 3),
            "loadgen_cpu_share": round(self.loadgen_cpu_s / self.elapsed_s, 3) if self.elapsed_s else 0.0,
        }


# --------------------------------------------------------------------------------------------
# the loop


async def run_load(
    backend: Backend,
    path: str,
    bodies: Sequence[bytes],
    *,
    label: str,
    concurrency: int,
    duration_s: float,
    max_requests: int,
    headers: dict[str, str] | None = None,
    body_headers: Sequence[dict[str, str]] | None = None,
    method: str = "POST",
    items_per_request: int = 1,
    accept: Accept | None = None,
    progress: bool = True,
    console: Console | None = None,
    timeout_s: float = 30.0,
) -> LoadResult:
    """Closed loop: ``concurrency`` workers; stops after ``max_requests`` or ``duration_s``.

    ``body_headers[i]``, when given, is added to ``headers`` for ``bodies[i]`` (a visitor's user
    agent and address, say); both lists are cycled together."""
    if concurrency < 1 or max_requests < 1 or duration_s <= 0:
        raise ValueError("concurrency, max_requests and duration_s must be positive")
    if method == "POST" and not bodies:
        raise ValueError("at least one body is needed")
    hdrs = {"content-type": "application/json", **(headers or {})}
    if body_headers and len(body_headers) != len(bodies):
        raise ValueError("body_headers must match bodies one to one")
    # merged once here, not per request: the load generator shares the daemon's two cores
    per_body = [{**hdrs, **h} for h in body_headers] if body_headers else None
    res = LoadResult(label, backend.name, concurrency, items_per_request, duration_s, max_requests)
    lat = res.latencies_ms
    state = {"issued": 0, "by": ""}
    start = time.perf_counter()
    cpu0 = time.process_time()
    deadline = start + duration_s

    async def worker(w: int) -> None:
        while True:
            i = state["issued"]
            if i >= max_requests:
                state["by"] = state["by"] or "count"
                return
            if time.perf_counter() >= deadline:
                state["by"] = state["by"] or "duration"
                return
            state["issued"] = i + 1
            body = bodies[i % len(bodies)] if bodies else None
            req_headers = per_body[i % len(per_body)] if per_body else hdrs
            t0 = time.perf_counter()
            try:
                status, content = await backend.request(w, method, path, body, req_headers)
            except Exception as exc:  # transport error or timeout (CancelledError is not an Exception)
                res.requests += 1
                res.errors[type(exc).__name__] += 1
                await asyncio.sleep(0.05)  # e.g. connection refused: do not spin
                continue
            dt = time.perf_counter() - t0
            res.requests += 1
            if 200 <= status < 300:
                res.ok += 1
                lat.append(dt * 1000.0)
                if accept is None:
                    res.items += items_per_request
                else:
                    try:
                        a, r = accept(content)
                    except Exception:
                        a, r = 0, items_per_request
                        res.errors["unreadable_2xx_body"] += 1
                    res.items += a
                    res.rejected_items += r
            else:
                res.statuses[status] += 1

    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(bar_width=28),
        TextColumn("{task.fields[done]:>8} ok"),
        TextColumn("{task.fields[rate]:>7.0f} req/s"),
        TextColumn("non-2xx {task.fields[bad]}  err {task.fields[err]}"),
        TimeElapsedColumn(),
    )
    cons = console or Console(stderr=True)
    with Progress(*columns, console=cons, disable=not progress, refresh_per_second=4) as prog:
        task = prog.add_task(label, total=1.0, done=0, rate=0.0, bad=0, err=0)

        def tick() -> None:
            now = time.perf_counter()
            frac = max((now - start) / duration_s, state["issued"] / max_requests)
            prog.update(
                task,
                completed=min(1.0, frac),
                done=res.ok,
                rate=res.ok / max(now - start, 1e-9),
                bad=res.non_2xx,
                err=res.transport_errors,
            )

        async def ticker() -> None:
            while True:
                tick()
                await asyncio.sleep(0.25)

        workers = [asyncio.create_task(worker(w)) for w in range(concurrency)]
        tick_task = asyncio.create_task(ticker())
        try:
            await asyncio.wait_for(asyncio.gather(*workers), timeout=duration_s + timeout_s + 10)
        except TimeoutError:
            state["by"] = "hard-stop"
            for t in workers:
                t.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
        finally:
            tick_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tick_task
        res.elapsed_s = time.perf_counter() - start
        res.loadgen_cpu_s = time.process_time() - cpu0
        tick()
    res.issued = state["issued"]
    res.stopped_by = state["by"]
    return res


def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when installed (it ships with Ray), else on the default asyncio loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _cli(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.loadgen", description="closed-loop HTTP load")
    ap.add_argument("url", help="base URL, e.g. http://127.0.0.1:8000 (loopback only)")
    ap.add_argument("--path", default="/track")
    ap.add_argument("--method", default="POST")
    ap.add_argument("--body", default='{"type":"track","payload":{"name":"loadgen"}}')
    ap.add_argument("--bodies-file", help="file with one JSON body per line, cycled (overrides --body)")
    ap.add_argument("-H", "--header", action="append", default=[], help="name:value (repeatable)")
    ap.add_argument("-c", "--concurrency", type=int, default=64)
    ap.add_argument("-d", "--duration", type=float, default=10.0, help="seconds")
    ap.add_argument("-n", "--requests", type=int, default=1_000_000, help="at most this many requests")
    ap.add_argument("--client", choices=CLIENTS, default="aiohttp")
    args = ap.parse_args(argv)
    headers = dict(h.split(":", 1) for h in args.header)
    if args.bodies_file:
        with open(args.bodies_file, "rb") as f:
            bodies = [line.strip() for line in f if line.strip()]
    else:
        bodies = [args.body.encode()]

    async def main() -> LoadResult:
        backend = make_backend(args.client, args.url, args.concurrency)
        try:
            return await run_load(
                backend,
                args.path,
                bodies,
                label=f"{args.method} {args.path}",
                concurrency=args.concurrency,
                duration_s=args.duration,
                max_requests=args.requests,
                headers=headers,
                method=args.method,
            )
        finally:
            await backend.aclose()

    print(json.dumps(run_async(main()).summary(), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(_cli())
