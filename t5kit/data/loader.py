"""Batches for pretraining: sampler -> raw windows -> objective -> rows -> `Batch`.

`PretrainingBatches` fills each batch from its sampler. An example that does not fit the batch is
not consumed, so the next batch starts with it, and the sampler's position is the whole state
(`state_dict`). Each example's noise comes from a generator seeded by `(seed, sample index)`, so
a resumed run, or a run with another batch size, corrupts a given window the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from typing import Any

import numpy as np

from t5kit.config.core import ConfigError
from t5kit.data.config import DataConfig
from t5kit.data.indexed_dataset import IndexedDataset
from t5kit.data.packing import RowPacker
from t5kit.data.sampler import BlendedSampler
from t5kit.data.span_corruption import SpanCorruption, vocabulary_sentinels
from t5kit.data.ul2 import UL2Mixture
from t5kit.data.windows import TokenWindows


@dataclass
class Batch:
    """Model inputs for one step: [B, L] encoder rows and [B, S] decoder rows.

    Arrays are numpy int64 until `to_torch`. Masks are 1 for tokens and 0 for padding, labels are
    -100 on padding, and the segment ids are set only for packed rows.
    """

    input_ids: Any
    attention_mask: Any
    decoder_input_ids: Any
    decoder_attention_mask: Any
    labels: Any
    encoder_segment_ids: Any = None
    decoder_segment_ids: Any = None
    num_examples: int = 0

    def to_torch(self, device=None) -> Batch:
        """Return a copy holding torch int64 tensors, moved to `device` when given."""
        import torch

        values = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, np.ndarray):
                value = torch.from_numpy(value).to(device=device, dtype=torch.long)
            values[item.name] = value
        return Batch(**values)


def build_objective(config: DataConfig, vocab_size: int) -> SpanCorruption | UL2Mixture:
    """Build the objective named in `config`, with T5 sentinels for a `vocab_size` vocabulary."""
    sentinel_id = vocabulary_sentinels(vocab_size)
    if config.objective == "ul2":
        for index, denoiser in enumerate(config.ul2.denoisers):
            outside = [token for token in denoiser.mode_token_ids if token >= vocab_size]
            if outside:
                raise ConfigError(
                    f"data.ul2.denoisers[{index}].mode_token_ids: {outside} are not ids of the datasets' "
                    f"{vocab_size}-id vocabulary; use ids below {vocab_size}"
                )
        word_starts = None
        if config.tokenizer is not None:
            from t5kit.tokenizer import T5Tokenizer

            tokenizer = T5Tokenizer(config.tokenizer)
            if tokenizer.vocab_size != vocab_size:
                raise ConfigError(
                    f"data.tokenizer: {config.tokenizer} has {tokenizer.vocab_size} ids but the datasets were "
                    f"written with {vocab_size}; give the tokenizer that `t5kit preprocess` used"
                )
            word_starts = tokenizer.word_starts()
        return UL2Mixture(
            config.inputs_length, sentinel_id, config.ul2.denoisers, config.eos_id, config.num_sentinels, word_starts
        )
    span = config.span_corruption
    return SpanCorruption(
        config.inputs_length,
        sentinel_id,
        config.eos_id,
        span.noise_density,
        span.mean_noise_span_length,
        span.noise_mask,
        span.geometric_p,
        span.max_span_length,
        config.num_sentinels,
    )


class PretrainingBatches:
    """An iterator of `Batch`es over blended windows, resumable through `state_dict`."""

    def __init__(
        self,
        windows: Sequence[TokenWindows],
        objective,
        sampler: BlendedSampler,
        batch_size: int,
        targets_length: int,
        packing: bool = False,
        seed: int = 0,
        pad_id: int = 0,
        decoder_start_id: int = 0,
        max_epochs: int | None = None,
    ):
        if targets_length < objective.targets_length:
            raise ConfigError(
                f"targets_length: {targets_length} is shorter than the {objective.targets_length} target tokens "
                "the objective produces; raise it or leave it unset"
            )
        self.windows = list(windows)
        self.objective = objective
        self.sampler = sampler
        self.batch_size = batch_size
        self.targets_length = targets_length
        self.packing = packing
        self.seed = seed
        self.pad_id = pad_id
        self.decoder_start_id = decoder_start_id
        self.max_epochs = max_epochs

    def _example(self, sample):
        window = self.windows[sample.dataset][sample.window]
        return self.objective(window, np.random.default_rng([self.seed, sample.index]))

    def __iter__(self) -> Iterator[Batch]:
        return self

    def __next__(self) -> Batch:
        if self.max_epochs is not None and self.sampler.epoch >= self.max_epochs:
            raise StopIteration
        packer = RowPacker(
            self.batch_size,
            self.objective.inputs_length,
            self.targets_length,
            max_segments=None if self.packing else 1,
            pad_id=self.pad_id,
            decoder_start_id=self.decoder_start_id,
        )
        while self.max_epochs is None or self.sampler.epoch < self.max_epochs:
            if not self.packing and packer.num_examples == self.batch_size:
                break
            if not packer.add(self._example(self.sampler.peek())):
                break
            next(self.sampler)
        return self._to_batch(packer)

    def _to_batch(self, packer: RowPacker) -> Batch:
        rows = packer.finish()
        return Batch(
            input_ids=rows.input_ids,
            attention_mask=(rows.encoder_segment_ids > 0).astype(np.int64),
            decoder_input_ids=rows.decoder_input_ids,
            decoder_attention_mask=(rows.decoder_segment_ids > 0).astype(np.int64),
            labels=rows.labels,
            encoder_segment_ids=rows.encoder_segment_ids if self.packing else None,
            decoder_segment_ids=rows.decoder_segment_ids if self.packing else None,
            num_examples=packer.num_examples,
        )

    def state_dict(self) -> dict[str, Any]:
        """Return the sampler state, the only state the batches depend on."""
        return {"sampler": self.sampler.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sampler.load_state_dict(state["sampler"])


def _check_sentinels(config: DataConfig, datasets: Sequence[IndexedDataset], key: str) -> None:
    """Reject datasets whose tokenizer has fewer sentinels than data.num_sentinels.

    Sentinel i is id vocab_size - 1 - i, so sentinels the tokenizer lacks would be ordinary pieces.
    """
    recorded = [dataset for dataset in datasets if dataset.num_sentinels is not None]
    if not recorded:
        return  # written by a t5kit that did not record the count
    fewest = min(recorded, key=lambda dataset: dataset.num_sentinels)
    if fewest.num_sentinels >= config.num_sentinels:
        return
    fix = (
        f"set data.num_sentinels={fewest.num_sentinels}"
        if fewest.num_sentinels
        else "train the tokenizer with sentinels (t5kit tokenizer train --num-sentinels 100) and preprocess again"
    )
    raise ConfigError(
        f"data.{key}: {fewest.prefix} was tokenized with {fewest.num_sentinels} sentinel tokens, but "
        f"data.num_sentinels is {config.num_sentinels}, so the missing sentinels would be ordinary pieces; {fix}"
    )


def build_pretraining_batches(
    config: DataConfig, batch_size: int, rank: int = 0, world_size: int = 1, split: str = "train"
) -> PretrainingBatches:
    """Open the datasets of `config` and return batches for one data-parallel rank.

    `split="train"` reads `config.paths` and never ends; `split="validation"` reads
    `config.validation_paths` in order, once.
    """
    paths = config.paths if split == "train" else config.validation_paths
    key = "paths" if split == "train" else "validation_paths"
    if not paths:
        raise ConfigError(f"data.{key} is empty; set it to the prefixes written by `t5kit preprocess`")
    datasets = [IndexedDataset(path) for path in paths]
    vocab_sizes = {dataset.vocab_size for dataset in datasets}
    if len(vocab_sizes) > 1:
        raise ConfigError(
            f"data.{key}: the datasets come from different tokenizers (vocabulary sizes {sorted(vocab_sizes)})"
        )
    _check_sentinels(config, datasets, key)
    objective = build_objective(config, datasets[0].vocab_size)
    windows = [TokenWindows(dataset, objective.raw_length, config.windowing, config.eos_id) for dataset in datasets]
    for dataset, dataset_windows in zip(datasets, windows):
        if len(dataset_windows) == 0:
            raise ConfigError(
                f"data.{key}: {dataset.prefix} has {dataset.num_tokens} tokens, not enough for one window of "
                f"{objective.raw_length}; add text to it, remove it, or lower data.inputs_length"
            )
    training = split == "train"
    sampler = BlendedSampler(
        [len(w) for w in windows],
        weights=config.weights if training else None,
        alpha=config.alpha if training else None,
        seed=config.seed,
        rank=rank,
        world_size=world_size,
        shuffle=training,
    )
    return PretrainingBatches(
        windows,
        objective,
        sampler,
        batch_size,
        config.targets_length or objective.targets_length,
        packing=config.packing,
        seed=config.seed,
        pad_id=config.pad_id,
        decoder_start_id=config.decoder_start_id,
        max_epochs=None if training else 1,
    )
