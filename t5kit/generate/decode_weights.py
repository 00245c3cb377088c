"""The decoder's weights laid out for one-position-per-step decoding.

Dimensions: N rows, D d_model, I heads * d_kv, F d_ff, V vocab.

`nn.Linear` stores weights [out, in], and `F.linear` on them reads memory well below the machine's
streaming rate in the matrix-vector products of batch-1 decoding on CPU. Four layouts of the same
weights, chosen by `choose_layout`:
- "views": transposed views of the model's weights; no memory, `F.linear` speed, any device.
- "packed": oneDNN's blocked layout (`torch.ops.mkldnn`), for CPU tensors in float32 or bfloat16.
- "copies": contiguous [in, out] copies, for other devices and for compiled steps with N > 1.
- "dot": the model's [out, in] weights, each output computed as a multiply-and-sum over its row.
  Only for compiled steps with N = 1: Inductor fuses it into one streaming reduction, while eager
  mode would build an [N, out, in] temporary.
Measured on the 2-core AMD EPYC (Zen 4) CI machine, with one thread, torch 2.13 CPU and load from
other jobs: one [3072, 768] fp32 matrix-vector product ran at about 6-10 GB/s with `F.linear`. As a
compiled row reduction it ran at 17 GB/s, the rate of `Tensor.sum` over the same bytes. Packed bf16
weights cut t5-base generate latency by about 25% against bf16 [in, out] copies. Packed weights and
copies take as much memory again as the decoder's projections plus the LM head (about 500 MB for
t5-base in fp32), so they are built once per model and reused while its parameters are unchanged.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass

import torch
from torch import nn

from t5kit.model import T5


@dataclass
class Projection:
    """A linear map in one of the layouts above, with an optional bias [out], or a module to call."""

    weight: torch.Tensor | None
    """[in, out] for views and copies, [out, in] for dot, opaque for packed; None for a module."""
    bias: torch.Tensor | None
    layout: str
    module: nn.Module | None = None
    """A layer that is no plain nn.Linear (a LoRA wrapper, say), called as it is."""

    @classmethod
    def of(cls, linear: nn.Module, layout: str) -> Projection:
        """Lay out a Linear (or an Embedding used as the tied LM head); keep other modules as they are."""
        if type(linear) not in (nn.Linear, nn.Embedding):
            # Adapters compute more than weight @ x, so only their own forward is correct.
            return cls(None, None, "module", linear)
        weight = linear.weight.detach()
        bias = getattr(linear, "bias", None)
        bias = None if bias is None else bias.detach()
        if layout == "packed":
            # The batch-size hint only tunes the blocking; other batch sizes give the same results.
            weight = torch.ops.mkldnn._reorder_linear_weight(weight, 1)
        elif layout == "copies":
            weight = weight.t().contiguous()
        elif layout == "views":
            weight = weight.t()
        return cls(weight, bias, layout)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the map to x [N, in]; return [N, out]."""
        if self.module is not None:
            return self.module(x)
        if self.layout == "packed":
            return torch.ops.mkldnn._linear_pointwise(x, self.weight, self.bias, "none", [], "")
        if self.layout == "dot":
            # Accumulate in fp32 (as oneDNN and MKL do for bf16) and round once at the end.
            out = (self.weight.float() * x.float()[:, None, :]).sum(-1).to(x.dtype)  # [N, out]
            return out if self.bias is None else out + self.bias
        if self.bias is None:
            return torch.mm(x, self.weight)
        return torch.addmm(self.bias, x, self.weight)


@dataclass
class LayerWeights:
    """One decoder layer's projections."""

    self_q: Projection
    self_k: Projection
    self_v: Projection
    self_o: Projection
    cross_q: Projection
    cross_k: Projection
    cross_v: Projection
    cross_o: Projection
    ffn_in: list[Projection]
    """[wi], or [wi_0, wi_1] for a gated feed-forward network."""
    ffn_out: Projection


@dataclass
class DecoderWeights:
    """Every decoder projection and the LM head, laid out for decoding."""

    layers: list[LayerWeights]
    lm_head: Projection
    layout: str
    """One of LAYOUTS."""
    fingerprint: tuple
    """Storage and version of each source parameter, to notice updates."""


# Copies per model; an entry goes away with its model.
_COPIES: weakref.WeakKeyDictionary[T5, DecoderWeights] = weakref.WeakKeyDictionary()


def _source_parameters(model: T5) -> list[torch.Tensor]:
    head = model.shared.weight if model.config.tie_word_embeddings else model.lm_head.weight
    return [*model.decoder.blocks.parameters(), head]


def fingerprint(model: T5) -> tuple:
    """Return the storage address, in-place version and dtype of each parameter the copies come from."""
    return tuple((p.data_ptr(), p._version, p.dtype) for p in _source_parameters(model))


def _layer(block: nn.Module, layout: str) -> LayerWeights:
    attention, cross, ffn = block.self_attn, block.cross_attn, block.ffn
    inputs = [ffn.wi_0, ffn.wi_1] if ffn.gated else [ffn.wi]
    # Cross-attention keys and values project the whole encoder output once, outside the compiled step.
    prefill = "views" if layout == "dot" else layout
    return LayerWeights(
        self_q=Projection.of(attention.q, layout),
        self_k=Projection.of(attention.k, layout),
        self_v=Projection.of(attention.v, layout),
        self_o=Projection.of(attention.o, layout),
        cross_q=Projection.of(cross.q, layout),
        cross_k=Projection.of(cross.k, prefill),
        cross_v=Projection.of(cross.v, prefill),
        cross_o=Projection.of(cross.o, layout),
        ffn_in=[Projection.of(linear, layout) for linear in inputs],
        ffn_out=Projection.of(ffn.wo, layout),
    )


def choose_layout(model: T5, rows: int, copy: bool = True, compile: bool = False) -> str:
    """Return the layout for decoding `rows` rows: see the module docstring."""
    config = model.config
    weight = model.shared.weight
    # NOTE: below about a million weights per matrix, the per-call cost of oneDNN and of the extra
    # kernels outweighs the faster reads, and tiny test models ran twice as fast on views. The bound
    # is an estimate between d_model 32 and t5-small's 512 x 2048 projections.
    if not copy or config.d_model * config.d_ff < 2**20:
        return "views"
    if weight.device.type in ("cpu", "cuda") and torch.is_autocast_enabled(weight.device.type):
        # Autocast recasts the inputs of mm, as in the model's own layers, but not of packed oneDNN ops.
        return "views"
    if compile:
        # Inductor (torch 2.13) cannot lower oneDNN linears whose packed weights are graph inputs.
        return "dot" if rows == 1 else "copies"
    if weight.device.type == "cpu" and torch.backends.mkldnn.is_available():
        if weight.dtype in (torch.float32, torch.bfloat16):
            return "packed"
    return "copies"


LAYOUTS = ("views", "packed", "copies", "dot")


def decoder_weights(model: T5, layout: str = "packed") -> DecoderWeights:
    """Return the model's decoder weights in `layout`; packed weights and copies are cached per model."""
    if layout not in LAYOUTS:
        raise ValueError(f"invalid layout {layout!r}; expected one of {', '.join(LAYOUTS)}")
    current = fingerprint(model)
    cached = _COPIES.get(model)
    if cached is not None and cached.layout == layout and cached.fingerprint == current:
        return cached

    with torch.no_grad():
        head = model.shared if model.config.tie_word_embeddings else model.lm_head
        weights = DecoderWeights(
            layers=[_layer(block, layout) for block in model.decoder.blocks],
            lm_head=Projection.of(head, layout),
            layout=layout,
            fingerprint=current,
        )
    if layout in ("packed", "copies"):
        _COPIES[model] = weights
    return weights
