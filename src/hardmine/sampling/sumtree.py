"""SumTree: sample B of N priorities, and update B of them, in O(B log N) with one numpy operation per level.

Layout (about 5.3 bytes per sample with the default block of 16): the N priorities live in a flat float32 array cut
into blocks of `block_size` leaves; a float64 binary tree sums the blocks (N / block_size nodes at its bottom level,
padded to a power of two). Sampling descends the float64 tree for all B draws at once, one level at a time, then
finds each draw's leaf inside its block by a running sum over the block's columns (block_size vector operations on B
draws each; numpy's cumsum along short rows is several times slower). An update rewrites the leaves,
recomputes the touched block sums from their leaves, and recomputes their ancestors level by level. Every sum is
computed by the same code path at construction and at update, so an updated tree is bitwise equal to one built
afresh from the same leaves (which is what makes resuming from a state_dict exact).
"""

from __future__ import annotations

import numpy as np

from hardmine._checks import (
    check_indices,
    check_int,
    check_values,
    last_occurrence,
    to_numpy,
)

_FLOAT32_MAX = float(np.finfo(np.float32).max)


_COLUMN_LOOP_FROM = 1024  # blocks at once from which a loop over columns beats a [M, block_size] cumsum


def _block_rows(leaves: np.ndarray, first: np.ndarray, block_size: int) -> np.ndarray:
    """The leaves [M, block_size] (float32) of the blocks starting at leaf positions `first` [M]."""
    return leaves.take(first[:, None] + np.arange(block_size))


def _block_sums(leaves: np.ndarray, first: np.ndarray, block_size: int) -> np.ndarray:
    """Float64 sums [M] of the blocks starting at leaf positions `first` [M], added left to right.

    The one order in which block sums are computed: construction, update and the in-block search of `sample`
    add the same float32 leaves in the same order (a cumulative sum is sequential), so they agree to the last
    bit, whichever of the two equivalent loops below runs.
    """
    if first.size < _COLUMN_LOOP_FROM:
        return np.cumsum(_block_rows(leaves, first, block_size), axis=1, dtype=np.float64)[:, -1]
    total = np.zeros(first.size, dtype=np.float64)
    for offset in range(block_size):  # a loop over the block's width, vectorised over the M blocks
        total += leaves.take(first + offset)
    return total


class SumTree:
    """Proportional sampling over N non-negative priorities: P(i) = p_i / sum(p).

    priorities: array [N] of finite, non-negative numbers (stored as float32, at most float32's max).
    block_size: leaves per block under the float64 tree (a power of two); smaller is faster to sample, larger
        is smaller in memory.
    """

    def __init__(self, priorities: np.ndarray, block_size: int = 16) -> None:
        block_size = check_int("block_size", block_size)
        if block_size & (block_size - 1):
            raise ValueError(f"block_size must be a power of two, got {block_size}")
        values = to_numpy(priorities)
        if values.ndim != 1 or values.size == 0:
            raise ValueError(f"priorities must be a non-empty 1-D array, got shape {tuple(values.shape)}")
        if values.dtype == np.bool_ or not (np.issubdtype(values.dtype, np.floating)
                                            or np.issubdtype(values.dtype, np.integer)):
            raise TypeError(f"priorities must be a real-valued array, got dtype {values.dtype}")
        self._n = int(values.size)
        self._block = block_size
        num_blocks = -(-self._n // block_size)
        self._leaves = np.zeros(num_blocks * block_size, dtype=np.float32)
        with np.errstate(over="ignore", invalid="ignore"):
            self._leaves[: self._n] = values
        if not (np.isfinite(self._leaves).all() and self._leaves.min() >= 0.0):
            self._check_priorities("priorities", values, values.size)  # raises, naming the offending values
        self._width = 1 << max(0, (num_blocks - 1).bit_length())  # nodes at the bottom level, a power of two
        self._tree = np.zeros(2 * self._width, dtype=np.float64)  # node k has children 2k, 2k+1; root is 1
        chunk = 1 << 16
        for lo in range(0, num_blocks, chunk):  # chunks keep the blocks in cache while their columns are added
            hi = min(lo + chunk, num_blocks)
            self._tree[self._width + lo: self._width + hi] = _block_sums(
                self._leaves, np.arange(lo, hi) * block_size, block_size)
        self._sum_levels_above(self._width)

    @staticmethod
    def _check_priorities(name: str, values: np.ndarray, length: int, indices: np.ndarray | None = None) -> np.ndarray:
        arr = check_values(name, values, length, indices=indices, nonnegative=True)
        if arr.size and arr.max() > _FLOAT32_MAX:
            raise ValueError(f"{name} must be at most {_FLOAT32_MAX:.3e} (stored as float32), got {arr.max():.3e}")
        return arr

    def __len__(self) -> int:
        """Number of priorities N."""
        return self._n

    @property
    def nbytes(self) -> int:
        """Bytes held by the structure's arrays (leaves and tree)."""
        return int(self._leaves.nbytes + self._tree.nbytes)

    def total(self) -> float:
        """Sum of all priorities (float64)."""
        return float(self._tree[1])

    def get(self, indices: np.ndarray) -> np.ndarray:
        """Priorities [B] (float64) of the int64 `indices` [B]."""
        idx = check_indices("indices", indices, self._n)
        return self._leaves[idx].astype(np.float64)

    def priorities(self) -> np.ndarray:
        """A read-only view of all N priorities (float32)."""
        view = self._leaves[: self._n]
        view.flags.writeable = False
        return view

    def update(self, indices: np.ndarray, priorities: np.ndarray) -> None:
        """Set the priorities of `indices` [B]; a duplicated index takes its last value. O(B log N).

        Raises before changing anything if an index is out of range or a priority is negative or not finite.
        """
        idx = check_indices("indices", indices, self._n)
        values = self._check_priorities("priorities", priorities, idx.size, indices=idx)
        keep = last_occurrence(idx)
        idx, values = idx[keep], values[keep]
        self._leaves[idx] = values
        nodes = idx // self._block + self._width  # non-decreasing: last_occurrence orders by index
        if nodes.size > 1:
            nodes = nodes[np.concatenate(([True], nodes[1:] != nodes[:-1]))]  # each touched block once
        values = _block_sums(self._leaves, (nodes - self._width) * self._block, self._block)
        tree = self._tree
        tree[nodes] = values
        level = self._width  # number of nodes on the current level
        while level > 1 and level > 2 * nodes.size:  # parent = sibling + self (float addition commutes)
            values = values + tree.take(nodes ^ 1)
            nodes = nodes >> 1
            tree[nodes] = values  # siblings updated together write the same sum twice
            level //= 2
        self._sum_levels_above(level)  # levels no wider than the batch: recomputed whole, as at construction

    def _sum_levels_above(self, level: int) -> None:
        """Recompute every node above the level of `level` nodes from its children."""
        tree = self._tree
        while level > 1:
            children = tree[level: 2 * level]
            tree[level // 2: level] = children[0::2] + children[1::2]
            level //= 2

    def sample(self, batch_size: int, generator: np.random.Generator) -> np.ndarray:
        """Draw `batch_size` int64 indices with replacement, P(i) = p_i / total(). O(B log N).

        The draws are independent; their order in the batch carries no meaning (it is nearly sorted by index).

        Raises ValueError when every priority is zero (there is no distribution to draw from).
        """
        batch_size = check_int("batch_size", batch_size)
        if not isinstance(generator, np.random.Generator):
            raise TypeError(f"generator must be a numpy.random.Generator, got {type(generator).__name__}")
        total = self.total()
        if not total > 0.0:
            raise ValueError("every priority is zero: there is nothing to sample (set some priority above 0)")
        u = np.sort(generator.random(batch_size)) * total  # sorted, the search and the descent walk memory in order
        residual = u.copy()
        first = self._descend(residual, guarded=False)
        offset = self._offset_in_block(first, residual)
        failed = np.flatnonzero(offset == self._block)  # rounding carried u past its block's mass (very rare)
        if failed.size:
            residual = u[failed]
            first[failed] = self._descend(residual, guarded=True)
            offset[failed] = self._offset_in_block(first[failed], residual, fallback=True)
        return first + offset

    def _descend(self, u: np.ndarray, guarded: bool) -> np.ndarray:
        """First leaf positions [B] of the blocks holding the masses `u` [B] (changed in place: what is left).

        Unguarded, the top of the tree is skipped: one search of the sorted masses in the prefix sums of a level of
        at most max(1024, B) nodes (O(B) per call), then a binary descent. Guarded, the descent starts at the root and
        never enters a side without mass, whatever rounding did to u.
        """
        tree = self._tree
        if guarded:
            node = np.ones(u.size, dtype=np.int64)
        else:
            start = min(self._width, 1 << (max(1024, u.size).bit_length() - 1))
            prefix = np.cumsum(tree[start: 2 * start])
            child = np.minimum(np.searchsorted(prefix, u, side="right"), start - 1)
            u -= np.concatenate(([0.0], prefix)).take(child)
            node = start + child
        while node[0] < self._width:
            left_child = node << 1
            left = tree.take(left_child)
            go_right = u >= left
            if guarded:
                go_right &= tree.take(left_child + 1) > 0.0
            u -= left * go_right
            node = left_child + go_right
        return (node - self._width) * self._block

    def _offset_in_block(self, first: np.ndarray, u: np.ndarray, fallback: bool = False) -> np.ndarray:
        """Offsets [B] of the leaves whose running sums, from `first`, pass the masses left in `u`.

        block_size means u is not below the block's sum; with `fallback`, the block's last positive leaf instead.
        """
        if first.size < _COLUMN_LOOP_FROM:
            rows = _block_rows(self._leaves, first, self._block)
            offset = (np.cumsum(rows, axis=1, dtype=np.float64) <= u[:, None]).sum(axis=1)
            if fallback:
                last_positive = self._block - 1 - np.argmax(rows[:, ::-1] > 0.0, axis=1)
        else:
            running = np.zeros(first.size, dtype=np.float64)
            offset = np.zeros(first.size, dtype=np.int64)
            last_positive = np.zeros(first.size, dtype=np.int64)
            for column in range(self._block):  # the order of _block_sums
                leaf = self._leaves.take(first + column)
                running += leaf
                offset += running <= u
                if fallback:
                    last_positive[leaf > 0.0] = column
        if fallback:
            offset = np.where(offset == self._block, last_positive, offset)
        return offset
