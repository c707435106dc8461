"""Row blocks: a plan run on slices of the batch's rows in parallel threads.

The rows of a batch are independent sequences, so a time layer can run its
forward and backward on row blocks at once, each on a core of its own with the
BLAS held to one thread (:func:`timelayers.threads.run_parallel`), and sum the
blocks' param gradients. The split changes the float rounding of the summed
gradients, not the results' meaning; it depends only on the batch size and the
thread count, so a run is reproducible on the same settings. Worth it when each
block's per-step work is large next to the Python overhead of a NumPy call and
the threads' turns at the GIL: at least ``MIN_ROWS_PER_BLOCK`` rows and
``MIN_ELEMENTS_PER_BLOCK`` row-units (rows * H) a block, the seq2seq models'
batches of 128.
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

from ...backend import get_array_module
from ...threads import can_run_parallel, even_blocks, get_num_threads, run_parallel
from .base import Plan

__all__ = ["RowBlocks", "row_blocks"]

MIN_ROWS_PER_BLOCK = 32
MIN_ELEMENTS_PER_BLOCK = 8192


def row_blocks(N, H):
    """The row slices of a NumPy batch of ``N`` rows with ``H`` units to run in
    parallel: one slice of all rows when splitting is not worth it or not
    possible (one thread, no BLAS control, called from a pool thread)."""
    n = min(get_num_threads(), N // MIN_ROWS_PER_BLOCK)
    if n < 2 or (N // n) * H < MIN_ELEMENTS_PER_BLOCK or not can_run_parallel():
        return [slice(0, N)]
    return even_blocks(N, n)


class BlockCaches(NamedTuple):
    slices: list    # the row slices of the forward
    caches: list    # the inner plan's cache of each block


class RowBlocks(Plan):
    """Run ``inner`` on row blocks of the batch through
    :func:`~timelayers.threads.run_parallel`: ``blocks`` is a list of row
    slices covering the batch, or a number of blocks of (nearly) equal size.
    ``inner``'s prepared weights (given, or made once per call) are shared by
    the blocks; the first block writes the param gradients, the others their own
    buffers, added to them."""

    def __init__(self, inner, blocks):
        self.inner = inner
        self.blocks = blocks if isinstance(blocks, int) else list(blocks)
        self._block_grads = []     # gradient buffers of the blocks after the first

    def __eq__(self, other):
        return (type(other) is RowBlocks and self.inner == other.inner
                and self.blocks == other.blocks)

    def __hash__(self):
        blocks = self.blocks if isinstance(self.blocks, int) else \
            tuple((s.start, s.stop) for s in self.blocks)
        return hash((self.inner, blocks))

    def __repr__(self):
        blocks = self.blocks if isinstance(self.blocks, int) else \
            [(s.start, s.stop) for s in self.blocks]
        return f"RowBlocks({self.inner!r}, {blocks})"

    def slices(self, N):
        """The row slices for a batch of ``N`` rows."""
        if isinstance(self.blocks, int):
            return even_blocks(N, max(1, min(self.blocks, N)))
        return self.blocks

    def prepare_forward(self, params):
        return self.inner.prepare_forward(params)

    def forward(self, params, xs, states, prepared=None):
        if prepared is None:
            prepared = self.prepare_forward(params)
        slices = self.slices(xs.shape[0])
        results = run_parallel([partial(self.inner.forward, params, xs[s],
                                        tuple(st[s] for st in states), prepared)
                                for s in slices])
        hs = _concat_rows([hs for hs, _, _ in results])
        last = tuple(_concat_rows(list(parts)) for parts in zip(*(r[1] for r in results)))
        return hs, last, BlockCaches(slices, [cache for _, _, cache in results])

    def prepare_backward(self, params):
        return self.inner.prepare_backward(params)

    def backward(self, params, grads, dhs, cache, prepared=None):
        if prepared is None:
            prepared = self.prepare_backward(params)
        block_grads = [grads] + self._gradient_buffers(grads, len(cache.slices) - 1)
        results = run_parallel([partial(self.inner.backward, params, g, dhs[s], c, prepared)
                                for s, c, g in zip(cache.slices, cache.caches, block_grads)])
        for block in block_grads[1:]:
            for total, part in zip(grads, block):
                total += part
        dxs = _concat_rows([dxs for dxs, _ in results])
        dstates = tuple(_concat_rows(list(parts)) for parts in zip(*(r[1] for r in results)))
        return dxs, dstates


    def _gradient_buffers(self, grads, n):
        """``n`` sets of buffers shaped like ``grads``, kept from call to call (a
        layer keeps its plan while it stays equal)."""
        like = [(type(g), g.shape, g.dtype) for g in grads]  # type: a model moved to a device
        if [[(type(b), b.shape, b.dtype) for b in block]
                for block in self._block_grads] != [like] * n:
            self._block_grads = [[get_array_module(g).empty_like(g) for g in grads]
                                 for _ in range(n)]
        return self._block_grads


def _concat_rows(parts):
    if len(parts) == 1:
        return parts[0]
    return get_array_module(parts[0]).concatenate(parts, axis=0)
