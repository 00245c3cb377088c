"""LoRA: low-rank updates on chosen linear layers of a frozen model, mergeable for inference.

Dimensions: I in_features, O out_features, R rank.

Each target `nn.Linear` W becomes W x + (alpha / R) * B A dropout(x) (Hu et al., 2021, "LoRA").
A [R, I] is initialised like a linear layer and B [O, R] is zero, so the wrapped model computes
exactly the base model's function before the first update. `merge_lora` folds B A into W and puts
plain `nn.Linear` layers back, so inference costs nothing extra.
"""

from __future__ import annotations

import fnmatch
import math
from dataclasses import dataclass, field

import torch
from torch import nn

from t5kit.config.core import ConfigError


@dataclass
class LoRAConfig:
    """The linear layers that get a low-rank update, and the update's rank, scale and dropout."""

    rank: int = 8
    """Rank R of the update B A."""
    alpha: float = 16.0
    """Scale numerator: the update is multiplied by alpha / rank."""
    dropout: float = 0.05
    """Dropout on the input of the low-rank branch during training."""
    targets: list[str] = field(default_factory=lambda: ["q", "v"])
    """Module names to adapt: a bare name (q, v, k, o, wi_0, wo) matches the last part of the module
    path, and a dotted pattern with * (encoder.*.q) matches the whole path."""

    def __post_init__(self) -> None:
        if self.rank <= 0:
            raise ConfigError(f"lora.rank: must be positive, got {self.rank}")
        if self.alpha <= 0:
            raise ConfigError(f"lora.alpha: must be positive, got {self.alpha}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lora.dropout: must be in [0, 1), got {self.dropout}")
        if not self.targets:
            raise ConfigError("lora.targets: name at least one module, for example [q, v]")


class LoRALinear(nn.Module):
    """A frozen nn.Linear plus a trainable low-rank update."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.base = base
        self.base.requires_grad_(False)
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_a = nn.Parameter(torch.empty(rank, base.in_features, **factory))
        self.lora_b = nn.Parameter(torch.zeros(base.out_features, rank, **factory))
        # A gets nn.Linear's default init; B = 0 makes the update zero until the first step.
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = nn.functional.linear(nn.functional.linear(self.dropout(x), self.lora_a), self.lora_b)
        return self.base(x) + self.scaling * update

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """Return the base layer with B A folded into its weight."""
        self.base.weight += self.scaling * (self.lora_b @ self.lora_a).to(self.base.weight.dtype)
        return self.base


def _matches(name: str, targets: list[str]) -> bool:
    last = name.rsplit(".", 1)[-1]
    return any(fnmatch.fnmatchcase(name, target) if "." in target else last == target for target in targets)


def apply_lora(model: nn.Module, config: LoRAConfig) -> list[str]:
    """Freeze `model`, wrap every targeted nn.Linear in LoRALinear in place, and return their names."""
    model.requires_grad_(False)
    names = [name for name, module in model.named_modules() if isinstance(module, nn.Linear) and _matches(name, config.targets)]
    if not names:
        linear = sorted({name.rsplit(".", 1)[-1] for name, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ConfigError(
            f"lora.targets {config.targets} match no linear layer; linear layer names are {', '.join(linear)}"
        )
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, LoRALinear(getattr(parent, child), config.rank, config.alpha, config.dropout))
    return names


def merge_lora(model: nn.Module) -> int:
    """Fold every LoRALinear of `model` into a plain nn.Linear in place; return how many were merged."""
    merged = 0
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, module.merged())
            merged += 1
    return merged


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Return only the LoRA tensors (`<module>.lora_a`, `<module>.lora_b`), detached."""
    return {
        name: param.detach()
        for name, param in model.named_parameters()
        if name.endswith((".lora_a", ".lora_b"))
    }


def load_lora_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy saved LoRA tensors into a model that `apply_lora` prepared with the same config."""
    params = dict(model.named_parameters())
    expected = {name for name in params if name.endswith((".lora_a", ".lora_b"))}
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise ValueError(f"LoRA tensors do not match the model: missing {missing[:4]}, unexpected {unexpected[:4]}")
    with torch.no_grad():
        for name, tensor in state.items():
            if params[name].shape != tensor.shape:
                raise ValueError(f"LoRA tensor {name} has shape {tuple(tensor.shape)}, the model expects {tuple(params[name].shape)}")
            params[name].copy_(tensor)
