"""The dependency graph of a run's remaining work, kept busy on an executor.

Nodes are steps (trigger -> poison -> scores; baseline) and cells (poison + baseline, plus the
data-level detector scores with defences). A node is submitted when its inputs exist; among ready
nodes cells go first, then poisoning and scoring, then trigger fits and baselines, each in the
order the cells first need them (so results stream in early). A failed step fails every node
waiting on it.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field

from ehrbackdoor.experiments.plan import Job

#: Priority among ready nodes (lower first).
RANK = {"cell": 0, "scores": 1, "poison": 1, "trigger": 2, "baseline": 2}

ResultFn = Callable[["Node", dict], None]


@dataclass
class Node:
    kind: str
    key: str
    job: Job
    order: int
    deps: set[str] = field(default_factory=set)
    users: list[str] = field(default_factory=list)


class Graph:
    """Steps and cells to run; `run` drives them to the end on an executor."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}

    def __contains__(self, key: str) -> bool:
        return key in self.nodes

    def add(self, job: Job) -> Node:
        node = self.nodes[job.key] = Node(job.kind, job.key, job, len(self.nodes))
        return node

    def link(self, dep: str, user: str) -> None:
        """`user` waits for `dep` (both already added)."""
        self.nodes[user].deps.add(dep)
        self.nodes[dep].users.append(user)

    def run(self, ex, fn: Callable[[Job], dict], on_step: ResultFn, on_cell: ResultFn) -> None:
        """Run every node with `ex.submit(fn, job)`; `on_step` / `on_cell` receive each finished
        node and its summary (a summary with "error" for a failure, also for the cells that
        could not run because a step they need failed)."""
        nodes = self.nodes
        ready: list[tuple[int, int, str]] = []
        for n in nodes.values():
            if not n.deps:
                heapq.heappush(ready, (RANK[n.kind], n.order, n.key))
        in_flight: dict[Future, str] = {}
        remaining = sum(n.kind == "cell" for n in nodes.values())

        def fail(key: str, error: str) -> None:
            nonlocal remaining
            n = nodes.pop(key, None)
            if n is None:
                return
            if n.kind == "cell":
                remaining -= 1
                on_cell(n, {"error": error, "traceback": ""})
                return
            for user in n.users:
                fail(user, error)

        while remaining:
            while len(in_flight) < ex.capacity and ready:
                _, _, key = heapq.heappop(ready)
                if key in nodes:
                    in_flight[ex.submit(fn, nodes[key].job)] = key
            if not in_flight:  # pragma: no cover - would be a bug in the graph
                raise RuntimeError("scheduler stalled with cells waiting; please report a bug")
            done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for fut in done:
                n = nodes[in_flight.pop(fut)]
                out = result(fut)
                if n.kind == "cell":
                    nodes.pop(n.key)
                    remaining -= 1
                    on_cell(n, out)
                    continue
                on_step(n, out)
                if "error" in out:
                    fail(n.key, f"{n.kind} step failed: {out['error']}")
                    continue
                nodes.pop(n.key)
                for user in n.users:
                    u = nodes.get(user)
                    if u is None:
                        continue
                    u.deps.discard(n.key)
                    if not u.deps:
                        heapq.heappush(ready, (RANK[u.kind], u.order, u.key))


def result(fut: Future) -> dict:
    """A step's summary; a worker that died becomes an error (a broken local pool stops the run,
    since no further step can be submitted to it)."""
    from concurrent.futures.process import BrokenProcessPool

    try:
        return fut.result()
    except BrokenProcessPool:
        raise RuntimeError(
            "a worker process died (out of memory?); rerun the same command to resume"
        ) from None
    except Exception as e:  # e.g. a Ray worker lost with its node
        return {"error": f"{type(e).__name__}: {e}", "traceback": ""}
