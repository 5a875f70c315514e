"""Low-rank adaptation (LoRA) of the prior's UNet through torch parametrizations.

Every ``Conv2d`` and ``Linear`` inside the residual and attention blocks gets a rank-``r``
weight update ``W + scale · (U D).reshape(W.shape)`` with ``D (r, fan_in) ~ N(0, 1/r)`` and
``U (out, r) = 0`` (so a fresh adapter leaves the network unchanged); the biases of those layers
are trainable too (as in SCD, Barbano et al. 2023). The base weights stay frozen. The adapter's
whole trainable state is a small dict of tensors that can be saved, restored and averaged, which
is what DDIP (one state per slice), D3IP (one shared state) and D3IP-meta (Reptile) need.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.utils import parametrize

from napari_ddip.prior.unet import AttentionBlock, ResBlock

LoRAState = dict[str, torch.Tensor]


class LowRankDelta(nn.Module):
    """The parametrization ``W ↦ W + scale · (U D).reshape(W.shape)``."""

    def __init__(self, weight: torch.Tensor, rank: int, scale: float = 1.0) -> None:
        super().__init__()
        out_features, fan_in = weight.shape[0], weight[0].numel()
        self.scale = scale
        self.down = nn.Parameter(weight.new_zeros(rank, fan_in))
        self.up = nn.Parameter(weight.new_zeros(out_features, rank))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + self.scale * (self.up @ self.down).reshape(weight.shape)


def _adapted_layers(net: nn.Module) -> dict[str, nn.Conv2d | nn.Linear]:
    """The layers LoRA adapts, by qualified name: those a network names itself
    (``net.lora_layers()``, e.g. a plain CNN's inner convolutions), else the conv and linear
    layers inside the UNet's residual and attention blocks."""
    if hasattr(net, "lora_layers"):
        return net.lora_layers()
    layers = {}
    for block_name, block in net.named_modules():
        if isinstance(block, ResBlock | AttentionBlock):
            for name, layer in block.named_modules():
                if isinstance(layer, nn.Conv2d | nn.Linear):
                    layers[f"{block_name}.{name}"] = layer
    return layers


class LoRA:
    """A LoRA adapter attached in place to ``net`` (whose own parameters are frozen).

    Args:
        net: the UNet to adapt.
        rank: LoRA rank ``r``.
        generator: CPU generator for the down-projection initialisation (determinism).
    """

    def __init__(
        self, net: nn.Module, rank: int = 4, generator: torch.Generator | None = None
    ) -> None:
        if rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {rank}")
        self.net = net
        self.rank = rank
        for p in net.parameters():
            p.requires_grad_(False)
        self._deltas: dict[str, LowRankDelta] = {}
        self._biases: dict[str, nn.Parameter] = {}
        for name, layer in _adapted_layers(net).items():
            delta = LowRankDelta(layer.weight.detach(), rank)
            parametrize.register_parametrization(layer, "weight", delta)
            self._deltas[name] = delta
            if layer.bias is not None:
                self._biases[name] = layer.bias
        self._base_biases = {k: b.detach().clone() for k, b in self._biases.items()}
        self.reset(generator)

    def parameters(self) -> list[nn.Parameter]:
        """The trainable tensors (LoRA factors and the adapted layers' biases)."""
        params = [p for d in self._deltas.values() for p in (d.down, d.up)]
        return params + list(self._biases.values())

    def train(self, enabled: bool = True) -> None:
        """Switch gradients of the adapter's tensors on or off."""
        for p in self.parameters():
            p.requires_grad_(enabled)

    @torch.no_grad()
    def reset(self, generator: torch.Generator | None = None) -> None:
        """Fresh adapter: ``D ~ N(0, 1/r)``, ``U = 0``, biases back to the base network's."""
        for delta in self._deltas.values():
            noise = torch.randn(delta.down.shape, generator=generator) / math.sqrt(self.rank)
            delta.down.copy_(noise)
        self._to_base()

    @torch.no_grad()
    def _to_base(self) -> None:
        """``U = 0`` and the base biases: the network computes as without the adapter."""
        for delta in self._deltas.values():
            delta.up.zero_()
        for name, bias in self._biases.items():
            bias.copy_(self._base_biases[name])

    @contextlib.contextmanager
    def bypassed(self) -> Iterator[None]:
        """The base network inside the block; the adapter's state is set aside and restored
        after."""
        kept = self.state()
        self._to_base()
        try:
            yield
        finally:
            self.load(kept)

    def state(self) -> LoRAState:
        """A detached copy of the trainable state (factors and biases), by name."""
        out = {}
        for name, delta in self._deltas.items():
            out[f"{name}.down"] = delta.down.detach().clone()
            out[f"{name}.up"] = delta.up.detach().clone()
        for name, bias in self._biases.items():
            out[f"{name}.bias"] = bias.detach().clone()
        return out

    @torch.no_grad()
    def load(self, state: LoRAState) -> None:
        """Copy ``state`` (from :meth:`state`, any device) into the adapter."""
        for name, delta in self._deltas.items():
            delta.down.copy_(state[f"{name}.down"])
            delta.up.copy_(state[f"{name}.up"])
        for name, bias in self._biases.items():
            bias.copy_(state[f"{name}.bias"])

    def check(self, state: LoRAState) -> None:
        """Raise ``ValueError`` unless ``state`` fits this adapter (names and shapes)."""
        mine = {k: tuple(v.shape) for k, v in self.state().items()}
        theirs = {k: tuple(v.shape) for k, v in state.items()}
        if mine != theirs:
            ranks = {v.shape[0] for k, v in state.items() if k.endswith(".down")}
            raise ValueError(
                f"the adaptation does not fit this prior and LoRA rank {self.rank} "
                f"(it has rank {sorted(ranks)} and {len(theirs)} tensors, this needs "
                f"{len(mine)}): use the prior and lora_rank it was made with"
            )

    def n_parameters(self) -> int:
        """Number of trainable scalars."""
        return sum(p.numel() for p in self.parameters())


def interpolate_states(start: LoRAState, end: LoRAState, step: float) -> LoRAState:
    """Reptile update ``φ + step · (θ − φ)`` of two adapter states."""
    return {k: torch.lerp(start[k], end[k].to(start[k].device), step) for k in start}
