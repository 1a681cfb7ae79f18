"""Captured world steps (`device_graphs: true`): a world's step compiled once on its fixed
shapes, so that a step runs as a few fused kernels instead of hundreds of small operations."""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from torch import Tensor

from composable_rl.world import Step, World

# The compiled kernels read the thread count when they run, not when they are compiled, so a
# run keeps following its share of the cores (`CoreShare`) with the step compiled.
OPTIONS = {"cpp.dynamic_threads": True}


class CapturedStep:
    """`world.step` compiled by `torch.compile` (one graph, static shapes): what the training
    loop calls instead of the step itself. A world whose step is not worth compiling says so
    with `capturable = False` (the Gymnasium adapter, which steps through numpy; gridworlds
    observed as planes) and keeps its step, after one warning naming the key. A step that
    fails to compile (no C++ compiler, an operation the compiler refuses, torch's limit of
    recompilations of one function in a process) runs as written from then on, after one
    warning. Compiling takes 5-20 s on two CPU cores: it pays on long runs. Plain
    `torch.compile`, not its CUDA-graph mode, which reuses the memory of one step's outputs
    for the next while the loop still holds them."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.run: Callable[[Tensor], Step] = world.step
        self.compiled = False  # True while the compiled step is the one called
        if not getattr(world, "capturable", True):
            _warn(f"{type(world).__name__} keeps its step (capturable = False)")
            return
        try:
            self.run = torch.compile(world.step, fullgraph=True, dynamic=False, options=OPTIONS)
        except RuntimeError as err:  # torch.compile refused on this Python or platform
            _warn(f"torch.compile is not available here ({_first_line(err)})")
            return
        from torch._dynamo.exc import FailOnRecompileLimitHit, TorchDynamoException

        self.failures = (TorchDynamoException, FailOnRecompileLimitHit)  # raised before it runs
        self.compiled = True

    def __call__(self, actions: Tensor) -> Step:
        """One step of every slot, as `world.step(actions)` returns it."""
        if not self.compiled:
            return self.run(actions)
        try:
            return self.run(actions)
        except self.failures as err:
            _warn(f"the step of {type(self.world).__name__} did not compile ({_first_line(err)})")
            self.run, self.compiled = self.world.step, False
            return self.run(actions)


def _first_line(err: BaseException) -> str:
    """The first line of an error's message, or its type's name where it has none."""
    return (str(err).strip() or type(err).__name__).splitlines()[0]


def _warn(why: str) -> None:
    """One line on stderr: why the world's step runs as written despite `device_graphs`."""
    print(f"warning: device_graphs: {why}; the step runs as written", file=sys.stderr)
