"""Replaying a fixed computation from a CUDA graph.

Diffusion acting runs T denoising steps of small matrix products: on a GPU its time is
kernel launches and Python, not arithmetic (about 500 launches per call for T = 20). A
CUDA graph records those launches once per input shape and replays them with a single
call. Parameters are read from their storage at replay time, so in-place optimizer and
Polyak updates are seen; random draws inside the graph are fresh on every replay
(PyTorch advances the generator's offset per replay).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager

import torch
from tensordict import TensorDictBase

Signature = tuple[tuple[tuple[int, ...], torch.dtype, torch.device], ...]


class GraphedCall:
    """`fn(*tensors) -> tensor`, replayed from one CUDA graph per input signature.

    `fn` must be free of host synchronisation and of Python branches on tensor values, and
    must not change its parameters' storage (in-place updates are fine). The result is a
    copy, so callers may keep it across replays.

    Args:
        fn: the computation to capture.
        warmup_calls: eager calls on a side stream before capture (lazy initialisation of
            cuBLAS handles and the caching allocator must happen outside the graph).
    """

    def __init__(self, fn: Callable[..., torch.Tensor], warmup_calls: int = 2) -> None:
        self.fn = fn
        self.warmup_calls = warmup_calls
        self._graphs: dict[Signature, tuple[torch.cuda.CUDAGraph, list, torch.Tensor]] = {}

    def __len__(self) -> int:
        return len(self._graphs)

    @torch.no_grad()
    def __call__(self, *inputs: torch.Tensor) -> torch.Tensor:
        signature = tuple((tuple(t.shape), t.dtype, t.device) for t in inputs)
        entry = self._graphs.get(signature)
        if entry is None:
            entry = self._graphs[signature] = self._capture(inputs)
        graph, static_inputs, static_output = entry
        for static, value in zip(static_inputs, inputs, strict=True):
            static.copy_(value)
        graph.replay()
        return static_output.clone()

    def _capture(self, inputs: tuple[torch.Tensor, ...]):
        static_inputs = [t.clone() for t in inputs]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup_calls):
                self.fn(*static_inputs)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_output = self.fn(*static_inputs)
        return graph, static_inputs, static_output


def optimizer_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """Every tensor of an optimizer's per-parameter state (Adam: step, moments)."""
    return [
        value
        for state in optimizer.state.values()
        for value in state.values()
        if isinstance(value, torch.Tensor)
    ]


@contextmanager
def undone_afterwards(trained: list[torch.Tensor], optimizer: torch.optim.Optimizer):
    """Run the block (training steps), then put back the `trained` tensors' values, the
    optimizer's state and the CPU and CUDA RNG; optimizer state the block created is
    zeroed, which is how Adam starts (step 0, zero moments). Work the block queued on
    other CUDA streams must be waited for inside it."""
    kept = [(t, t.detach().clone()) for t in (*trained, *optimizer_tensors(optimizer))]
    known = {id(t) for t, _ in kept}
    rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        with torch.no_grad():
            for tensor, saved in kept:
                tensor.copy_(saved)
            for tensor in optimizer_tensors(optimizer):
                if id(tensor) not in known:
                    tensor.zero_()
        torch.set_rng_state(rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state(cuda_rng)


class GraphedStep:
    """A whole training step, `step(batch) -> outputs` (losses, backward, optimizer step),
    replayed from one CUDA graph.

    A SAC update is ~60 small kernels forward and ~100 backward plus the optimizer's:
    launched from Python they cost ~6 ms on an H100, with the loss compiled ~1.8 ms,
    replayed from one graph 0.65 ms (benchmarks/gpu_step.py, docs/engine.md).

    Capture needs eager warm-up calls first (cuBLAS handles, the optimizer's lazily made
    state, the allocator). Those calls train, so the trained tensors, the optimizer's
    state and the RNG are put back afterwards (`undone_afterwards`): the first replay is
    the first update. Each call copies `batch` into the graph's static input (same keys
    and shapes every time: a replay buffer's fixed batch size) and returns the graph's
    static outputs, which the next call overwrites.

    Args:
        step: the computation to capture. It must be free of host synchronisation, must
            not create or replace parameters or optimizer state, and its optimizer must be
            capturable (``capturable=True``).
        trained: every tensor `step` changes in place besides the optimizer's state (the
            parameters), restored after the warm-up.
        optimizer: the optimizer `step` steps.
        warmup_calls: eager calls on a side stream before capture.
    """

    def __init__(
        self,
        step: Callable[[TensorDictBase], TensorDictBase],
        trained: list[torch.Tensor],
        optimizer: torch.optim.Optimizer,
        warmup_calls: int = 3,
    ) -> None:
        self.step, self.trained, self.optimizer = step, trained, optimizer
        self.warmup_calls = warmup_calls
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static_batch: TensorDictBase | None = None
        self._static_outputs: TensorDictBase | None = None
        self._gradients: list[torch.Tensor | None] = []

    @property
    def captured(self) -> bool:
        return self._graph is not None

    def __call__(self, batch: TensorDictBase) -> TensorDictBase:
        if self._graph is None:
            self._capture(batch)
        else:
            self._static_batch.update_(batch)
        self._graph.replay()
        return self._static_outputs

    def _capture(self, batch: TensorDictBase) -> None:
        self._static_batch = batch.clone()
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with undone_afterwards(self.trained, self.optimizer):
            with torch.cuda.stream(side):
                for _ in range(self.warmup_calls):
                    self.optimizer.zero_grad(set_to_none=False)
                    self.step(self._static_batch)
            torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        # gradients set to None before capture: the captured backward allocates them in
        # the graph's own memory pool and writes (not accumulates) them on every replay
        self.optimizer.zero_grad(set_to_none=True)
        with torch.cuda.graph(graph):
            self._static_outputs = self.step(self._static_batch)
        # the graph reads and writes these addresses: keep them alive whatever callers
        # do with `.grad` between replays
        self._gradients = [p.grad for group in self.optimizer.param_groups for p in group["params"]]
        self._graph = graph
