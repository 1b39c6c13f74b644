"""A Ray cluster of several nodes on this one machine, with Ray's own ``ray.cluster_utils.Cluster``.

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

import psutil

from tests.conftest import free_port

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
