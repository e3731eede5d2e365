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
        self._ready: list[tuple[int, int, str]] = []
        self._remaining = 0

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
        self._on_step, self._on_cell = on_step, on_cell
        for n in self.nodes.values():
            if not n.deps:
                self._push(n)
        self._remaining = sum(n.kind == "cell" for n in self.nodes.values())
        in_flight: dict[Future, str] = {}
        while self._remaining:
            while len(in_flight) < ex.capacity and self._ready:
                key = heapq.heappop(self._ready)[2]
                if key in self.nodes:
                    in_flight[ex.submit(fn, self.nodes[key].job)] = key
            if not in_flight:  # pragma: no cover - would be a bug in the graph
                raise RuntimeError("scheduler stalled with cells waiting; please report a bug")
            done, _ = wait(list(in_flight), return_when=FIRST_COMPLETED)
            for fut in done:
                self._finished(self.nodes[in_flight.pop(fut)], result(fut))

    def _push(self, n: Node) -> None:
        heapq.heappush(self._ready, (RANK[n.kind], n.order, n.key))

    def _finished(self, n: Node, out: dict) -> None:
        if n.kind == "cell":
            del self.nodes[n.key]
            self._remaining -= 1
            self._on_cell(n, out)
            return
        self._on_step(n, out)
        if "error" in out:
            self._fail(n.key, f"{n.kind} step failed: {out['error']}")
            return
        del self.nodes[n.key]
        for user in n.users:
            u = self.nodes.get(user)
            if u is not None:
                u.deps.discard(n.key)
                if not u.deps:
                    self._push(u)

    def _fail(self, key: str, error: str) -> None:
        """A node cannot run: fail the cells waiting on it, however indirectly."""
        n = self.nodes.pop(key, None)
        if n is None:
            return
        if n.kind == "cell":
            self._remaining -= 1
            self._on_cell(n, {"error": error, "traceback": ""})
            return
        for user in n.users:
            self._fail(user, error)


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
