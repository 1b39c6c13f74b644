"""Helper process: deploy (or delete) a no-op raw-ASGI Serve app in a running daemon's Ray cluster.

    python -m benchmarks.noop_app deploy --address 10.0.0.1:6379 --url http://127.0.0.1:8000
    python -m benchmarks.noop_app delete --address 10.0.0.1:6379

The app is named ``noop``, served at ``/noop``, one replica with ``num_cpus=0`` and the same
``max_ongoing_requests`` as the ingest deployment. It reads the whole request body and answers
``200 {"ok":true}``: Serve proxy (HAProxy) → replica → back, with no application work at all.
It runs in its own process so the benchmark runner never becomes a Ray driver (no Ray threads
competing with the load generator). Being defined in ``__main__``, the class is pickled by value,
so Ray workers need not import this module.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

# the daemon's Serve runs with these (eventlens.daemon.serve_env); keep this driver consistent
os.environ.setdefault("RAY_SERVE_ENABLE_HA_PROXY", "1")
os.environ.setdefault("RAY_SERVE_THROUGHPUT_OPTIMIZED", "1")

APP_NAME = "noop"
ROUTE = "/noop"
BODY = b'{"ok":true}'


def _deployment(max_ongoing: int) -> Any:
    from ray import serve

    @serve.deployment(
        name="Noop",
        ray_actor_options={"num_cpus": 0},
        max_ongoing_requests=max_ongoing,
        graceful_shutdown_timeout_s=2,
    )
    @serve.ingress()
    class Noop:
        def __serve_build_asgi_app__(self) -> Any:
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]

            async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
                if scope["type"] == "lifespan":
                    while True:
                        msg = await receive()
                        if msg["type"] == "lifespan.startup":
                            await send({"type": "lifespan.startup.complete"})
                        elif msg["type"] == "lifespan.shutdown":
                            await send({"type": "lifespan.shutdown.complete"})
                            return
                if scope["type"] != "http":
                    return
                more = True
                while more:  # read the request body, as a real handler must
                    msg = await receive()
                    more = msg.get("more_body", False)
                await send({"type": "http.response.start", "status": 200, "headers": headers})
                await send({"type": "http.response.body", "body": BODY})

            return app

    return Noop


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.noop_app")
    ap.add_argument("action", choices=("deploy", "delete"))
    ap.add_argument("--address", required=True, help="GCS address of the daemon's Ray cluster")
    ap.add_argument("--url", help="daemon base URL, to wait until POST /noop answers 200")
    ap.add_argument("--max-ongoing-requests", type=int, default=256)
    ap.add_argument("--timeout", type=float, default=120.0)
    args = ap.parse_args(argv)

    import ray
    from ray import serve

    t0 = time.monotonic()
    ray.init(address=args.address, namespace="eventlens", log_to_driver=False, include_dashboard=False)
    try:
        if args.action == "delete":
            serve.delete(APP_NAME, _blocking=True)
            print(json.dumps({"deleted": APP_NAME, "seconds": round(time.monotonic() - t0, 1)}))
            return 0
        app = _deployment(args.max_ongoing_requests).bind()
        serve.run(app, name=APP_NAME, route_prefix=ROUTE, blocking=False)
        ready = None
        if args.url:
            import httpx

            deadline = time.monotonic() + args.timeout
            with httpx.Client(base_url=args.url, trust_env=False, timeout=5) as c:
                while time.monotonic() < deadline:
                    try:
                        if c.post(ROUTE, content=b"{}").status_code == 200:
                            ready = True
                            break
                    except httpx.HTTPError:
                        ready = False  # not routed yet: poll again
                    time.sleep(0.25)
            if not ready:
                print(json.dumps({"error": f"POST {ROUTE} did not answer 200 within {args.timeout}s"}))
                return 1
        print(json.dumps({"deployed": APP_NAME, "route": ROUTE, "seconds": round(time.monotonic() - t0, 1)}))
        return 0
    finally:
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
