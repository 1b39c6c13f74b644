"""A Ray cluster of several nodes on this one machine, with Ray's own ``ray.cluster_utils.Cluster``;
used by the cluster tests (tests/cluster) and, run as a program, by ``benchmarks.run --mode cluster``:

    python -m benchmarks.simcluster --data-dir D --port P [--workers 2] [--json]

starts the cluster, then the daemon on it (``eventlens.daemon.start``, the ``EVENTLENS_*``
environment applies: give it ``EVENTLENS_REDIS_URL``, since nodes must not share a file log), prints
what ``eventlens serve --json`` prints, and on SIGTERM or Ctrl-C drains and takes the cluster down.

Every node runs on loopback (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` keeps Ray from rewriting
127.0.0.1 to the machine's interface address), gets the ``RAY_SERVE_*`` variables before it starts,
and, since all nodes share one machine, its own HAProxy ports: every node runs a Serve proxy, as
``proxy_location: EveryNode`` does in production. A dead node is detected within ~3 s.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass, field
from typing import Any

from benchmarks._psutil import psutil


def free_port(low: int = 20000, high: int = 29000) -> int:
    """A free port below the kernel's ephemeral range (32768+), where Ray's own processes bind at
    random, and below Serve's direct-ingress ports (30000+): picked now, bound later, still free."""
    import random
    import socket

    for _ in range(200):
        port = random.randint(low, high)
        with socket.socket() as s:
            try:
                s.bind(("0.0.0.0", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port")


HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 1000,
    "health_check_failure_threshold": 3,
}


def serve_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k.startswith("RAY_SERVE_")}


@dataclass
class Worker:
    node: Any
    http_port: int
    env: dict[str, str]

    @property
    def node_id(self) -> str:
        return str(self.node.node_id)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def process_tree(self) -> list[psutil.Process]:
        """The raylet and everything it started (workers, and the HAProxy a proxy actor spawned)."""
        raylet = self.node.all_processes["raylet"][0].process.pid
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(raylet)
            return [root, *root.children(recursive=True)]
        return []


@dataclass
class SimulatedCluster:
    cluster: Any = None
    workers: list[Worker] = field(default_factory=list)
    left_behind: list[int] = field(default_factory=list)

    def start(self, workers: int = 2) -> SimulatedCluster:
        from ray._private import ray_constants
        from ray.cluster_utils import Cluster

        # read when ray is imported: the test session imported it long before this module ran
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
        ray_constants.ENABLE_RAY_CLUSTER = False
        os.environ["RAY_SERVE_ENABLE_HA_PROXY"] = "1"
        os.environ["RAY_SERVE_THROUGHPUT_OPTIMIZED"] = "1"
        os.environ["RAY_SERVE_HAPROXY_METRICS_PORT"] = str(free_port())
        os.environ["RAY_SERVE_HAPROXY_STATS_PORT"] = str(free_port())
        os.environ.pop("RAY_ADDRESS", None)
        self.cluster = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "node_ip_address": "127.0.0.1", "_system_config": HEALTH_CHECKS},
        )
        for _ in range(workers):
            self.add_worker()
        self.cluster.wait_for_nodes()
        return self

    @property
    def address(self) -> str:
        return str(self.cluster.address)

    def add_worker(self) -> Worker:
        port = free_port()
        env = {
            **serve_env(),
            "RAY_SERVE_WORKER_PROXY_HTTP_PORT": str(port),
            "RAY_SERVE_HAPROXY_METRICS_PORT": str(free_port()),
            "RAY_SERVE_HAPROXY_STATS_PORT": str(free_port()),
        }
        node = self.cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1", env_vars=env)
        worker = Worker(node, port, env)
        self.workers.append(worker)
        return worker

    def crash(self, worker: Worker) -> list[int]:
        """Kill a worker node without warning (``allow_graceful=False``), then end what it left
        running (by the pids recorded before: HAProxy outlives its node). Returns those pids."""
        tree = worker.process_tree()
        self.cluster.remove_node(worker.node, allow_graceful=False)
        self.workers.remove(worker)
        survivors = []
        for proc in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                    survivors.append(proc.pid)
                    os.kill(proc.pid, signal.SIGKILL)
        self.left_behind.extend(survivors)
        return survivors

    def shutdown(self) -> None:
        import ray

        if ray.is_initialized():
            ray.shutdown()
        for worker in list(self.workers):
            self.crash(worker)
        self.cluster.shutdown()


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    import sys
    import threading
    from pathlib import Path

    ap = argparse.ArgumentParser(prog="python -m benchmarks.simcluster", description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--workers", type=int, default=2, help="worker nodes beside the head (one CPU each)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if not os.environ.get("EVENTLENS_REDIS_URL"):
        ap.error("set EVENTLENS_REDIS_URL: the nodes' shards must log to Redis, not to a shared file")
    sim = SimulatedCluster().start(workers=args.workers)
    stop = threading.Event()
    try:
        from eventlens import daemon

        nodes = args.workers + 1
        flags = {
            "ray_address": sim.address,
            "data_dir": args.data_dir,
            "port": args.port,
            "shards": int(os.environ.get("EVENTLENS_SHARDS", nodes)),
            "ingest_replicas": nodes,
            "ingest_max_replicas_per_node": 1,
        }
        running = daemon.start(flags)
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        info = {**running.info(), "nodes": nodes, "worker_urls": [w.url for w in sim.workers]}
        print(json.dumps(info, indent=2) if args.json else f"listening on {running.url}", flush=True)
        while not stop.is_set():
            stop.wait(1.0)
        states = daemon.stop(running.settings)
        left = sum(int(s.get("pending", 0)) for s in states)
        print(f"stopped; {left} events left in the log for the next start", file=sys.stderr, flush=True)
    finally:
        sim.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
