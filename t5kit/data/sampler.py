"""A deterministic, resumable sampler over the windows of one or several blended datasets.

An epoch has `epoch_size` samples (by default the total window count, rounded down to a multiple
of the world size). Dataset d gets `counts[d]` of them, its blend weight times the epoch size,
rounded by largest remainder. The weights are explicit, or proportional to `size ** alpha` where
size is the window count: alpha = 1 samples in proportion to size, and smaller alphas (0.3 to 0.7
in multilingual pretraining) raise the share of small datasets.

With `shuffle=True` the order of the epoch is a permutation drawn from `(seed, epoch)`. Each
dataset walks through its windows in a permutation drawn from `(seed, dataset, pass)`, so a dataset
whose share exceeds its size repeats a window only after it has shown every window once. The k-th sample
of an epoch goes to rank `k % world_size`, so the ranks split every epoch without overlap.

The sampler's only state is the rank's position. `state_dict()` stores it with the settings, so a
sampler built with the same settings continues from it with exactly the same samples.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from t5kit.errors import T5kitError


class SamplerStateError(T5kitError):
    """A saved sampler state that does not match the sampler it is loaded into."""


def blend_weights(
    sizes: Sequence[int], weights: Sequence[float] | None = None, alpha: float | None = None
) -> np.ndarray:
    """Return normalized sampling weights: explicit `weights`, or `size ** alpha` (alpha 1 by default)."""
    sizes = np.asarray(sizes, dtype=np.float64)
    if weights is not None and alpha is not None:
        raise ValueError("give explicit weights or alpha, not both")
    if weights is not None:
        raw = np.asarray(weights, dtype=np.float64)
        if raw.shape != sizes.shape:
            raise ValueError(f"got {len(raw)} weights for {len(sizes)} datasets")
    else:
        raw = sizes ** (1.0 if alpha is None else alpha)
    if np.any(raw < 0) or raw.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {raw.tolist()}")
    return raw / raw.sum()


def largest_remainder_counts(weights: np.ndarray, total: int) -> np.ndarray:
    """Split `total` into integer counts proportional to `weights`, rounding by largest remainder."""
    exact = weights * total
    counts = np.floor(exact).astype(np.int64)
    remainder_order = np.argsort(-(exact - counts), kind="stable")
    counts[remainder_order[: total - counts.sum()]] += 1
    return counts


@dataclass(frozen=True)
class Sample:
    """One draw: the dataset, its window, the epoch, and the sample's index over all epochs."""

    dataset: int
    window: int
    epoch: int
    index: int


class BlendedSampler:
    """An endless, epoch-aware stream of `Sample`s for one data-parallel rank."""

    def __init__(
        self,
        sizes: Sequence[int],
        weights: Sequence[float] | None = None,
        alpha: float | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        epoch_size: int | None = None,
    ):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank {rank} is not in [0, world_size={world_size})")
        self.sizes = [int(size) for size in sizes]
        self.weights = blend_weights(self.sizes, weights, alpha)
        for index, (size, weight) in enumerate(zip(self.sizes, self.weights)):
            if size <= 0 and weight > 0:
                raise T5kitError(
                    f"dataset {index} has no windows but a blend weight of {weight:.3g}; "
                    "give it weight 0 or more data"
                )
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.shuffle = shuffle
        total = sum(self.sizes) if epoch_size is None else epoch_size
        self.epoch_size = total - total % world_size
        if self.epoch_size <= 0:
            raise T5kitError(f"an epoch of {total} samples gives no sample to each of {world_size} ranks")
        self.counts = largest_remainder_counts(self.weights, self.epoch_size)
        self._count_starts = np.concatenate([[0], np.cumsum(self.counts)])
        self.local_epoch_size = self.epoch_size // world_size
        self.position = 0
        self._epoch_plans: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._window_orders: dict[tuple[int, int], np.ndarray] = {}

    def _epoch_plan(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """Return, for each sample of the epoch, its dataset and its draw number in that dataset."""
        if epoch not in self._epoch_plans:
            if self.shuffle:
                slots = np.random.default_rng([self.seed, epoch]).permutation(self.epoch_size)
            else:
                # Interleave the datasets evenly: slot r of dataset d sits at (r + 0.5) / counts[d].
                fractions = np.concatenate([(np.arange(c) + 0.5) / c for c in self.counts if c > 0])
                slots = np.argsort(fractions, kind="stable")
            datasets = np.searchsorted(self._count_starts, slots, side="right") - 1
            # Number the draws of each dataset in order of appearance, so a dataset's pass ends
            # before its next pass starts.
            grouped = np.argsort(datasets, kind="stable")
            draws = np.empty(self.epoch_size, dtype=np.int64)
            draws[grouped] = np.arange(self.epoch_size) - self._count_starts[datasets[grouped]]
            self._epoch_plans = {epoch: (datasets, draws)}
        return self._epoch_plans[epoch]

    def _window_order(self, dataset: int, dataset_pass: int) -> np.ndarray | None:
        if not self.shuffle:
            return None
        key = (dataset, dataset_pass)
        if key not in self._window_orders:
            # Keep one pass per dataset; a sample of an older pass is recomputed on demand.
            self._window_orders = {k: v for k, v in self._window_orders.items() if k[0] != dataset}
            rng = np.random.default_rng([self.seed, 1 + dataset, dataset_pass])
            self._window_orders[key] = rng.permutation(self.sizes[dataset])
        return self._window_orders[key]

    def sample(self, position: int) -> Sample:
        """Return the rank's sample at `position` (0-based, counted over all epochs)."""
        epoch, local = divmod(position, self.local_epoch_size)
        within = local * self.world_size + self.rank
        datasets, draws = self._epoch_plan(epoch)
        dataset = int(datasets[within])
        draw = epoch * int(self.counts[dataset]) + int(draws[within])
        dataset_pass, window = divmod(draw, self.sizes[dataset])
        order = self._window_order(dataset, dataset_pass)
        if order is not None:
            window = int(order[window])
        return Sample(dataset, window, epoch, epoch * self.epoch_size + within)

    def peek(self) -> Sample:
        """Return the next sample without consuming it."""
        return self.sample(self.position)

    def __iter__(self) -> Iterator[Sample]:
        return self

    def __next__(self) -> Sample:
        sample = self.sample(self.position)
        self.position += 1
        return sample

    @property
    def epoch(self) -> int:
        return self.position // self.local_epoch_size

    def _settings(self) -> dict[str, Any]:
        return {
            "sizes": list(self.sizes),
            "weights": [float(weight) for weight in self.weights],
            "seed": self.seed,
            "rank": self.rank,
            "world_size": self.world_size,
            "shuffle": self.shuffle,
            "epoch_size": self.epoch_size,
        }

    def state_dict(self) -> dict[str, Any]:
        """Return the position and the settings it is valid for."""
        return {"position": self.position, **self._settings()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a saved position; raise SamplerStateError if the settings differ."""
        for key, value in self._settings().items():
            saved = state.get(key)
            same = np.allclose(saved, value, rtol=1e-9) if key == "weights" and saved is not None else saved == value
            if not same:
                raise SamplerStateError(
                    f"sampler state has {key}={saved!r}, but this sampler has {key}={value!r}; resume with "
                    "the same datasets, weights, seed and number of ranks as the saved run"
                )
        self.position = int(state["position"])
