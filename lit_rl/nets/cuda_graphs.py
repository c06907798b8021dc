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

import torch

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
