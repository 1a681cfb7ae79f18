"""Captured world steps (`device_graphs: true`): a world's step compiled once on its fixed
shapes, so that a step runs as a few fused kernels instead of hundreds of small operations."""

from __future__ import annotations

import sys
from collections.abc import Callable

import torch
from torch import Tensor
from torch._dynamo.exc import TorchDynamoException

from composable_rl.world import Step, World


class CapturedStep:
    """`world.step` compiled by `torch.compile` (one graph, static shapes): what the training
    loop calls instead of the step itself. A world whose step is not worth compiling says so
    with `capturable = False` (the Gymnasium adapter, which steps through numpy) and keeps its
    step, after one warning naming the key. A step that fails to compile (no C++ compiler, an
    operation the compiler refuses, torch's limit of recompilations per function in a process
    reached) runs as written from then on, after one warning. Compiling takes seconds (5-20 s
    on two CPU cores): it pays on long runs. Plain `torch.compile`, not its CUDA-graph mode,
    which reuses the memory of one step's outputs for the next while the loop still holds them."""

    def __init__(self, world: World) -> None:
        self.world = world
        self.compiled = bool(getattr(world, "capturable", True))
        self.run: Callable[[Tensor], Step] = world.step
        if self.compiled:
            self.run = torch.compile(world.step, fullgraph=True, dynamic=False)
        else:
            warn(f"{type(world).__name__} keeps its step as written (capturable = False)")

    def __call__(self, actions: Tensor) -> Step:
        """One step of every slot, as `world.step(actions)` returns it."""
        if not self.compiled:
            return self.run(actions)
        try:
            return self.run(actions)
        except TorchDynamoException as err:  # raised while compiling, before the step runs
            reason = (str(err).strip() or type(err).__name__).splitlines()[0]
            warn(f"the step of {type(self.world).__name__} did not compile ({reason})")
            self.run, self.compiled = self.world.step, False
            return self.run(actions)


def warn(why: str) -> None:
    """One line on stderr: why the world's step runs as written despite `device_graphs`."""
    print(f"warning: device_graphs: {why}; it runs as written", file=sys.stderr)
