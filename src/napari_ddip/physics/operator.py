"""The linear-operator interface every forward model implements.

Images are batched over slices: ``x`` has shape ``(Z, Y, X)`` (real float32 for CT, complex64
for MRI). Measurements have an operator-specific shape whose first axis is also ``Z``, so any
subset of slices can be passed through the same operator (``op.forward(x[i:j])``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


class LinearOperator(ABC):
    """A linear map ``A`` from images ``(Z, Y, X)`` to measurements ``(Z, ...)``.

    Subclasses implement :meth:`forward`, :meth:`adjoint` (the exact adjoint, so that
    ``<A x, y> == <x, Aᴴ y>`` to float precision) and :meth:`pinv` (a fast approximate inverse:
    FBP for CT, zero-filled / SENSE-combined for MRI). All three are differentiable in torch.
    """

    #: True when images are complex (MRI), False when real (CT).
    is_complex: bool = False

    @property
    @abstractmethod
    def image_shape(self) -> tuple[int, int]:
        """In-plane image shape ``(Y, X)``."""

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``A x`` for ``x`` of shape ``(Z, Y, X)``."""

    @abstractmethod
    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``Aᴴ y`` for ``y`` of shape ``(Z, ...)``; returns ``(Z, Y, X)``."""

    @abstractmethod
    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """Approximate inverse (FBP / zero-filled) of ``y``; returns ``(Z, Y, X)``."""

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``Aᴴ A x``."""
        return self.adjoint(self.forward(x))

    def subset(self, index: slice | torch.Tensor) -> LinearOperator:
        """The operator restricted to some slices (identity for slice-independent operators)."""
        return self

    def to(self, device: torch.device | str) -> LinearOperator:
        """A copy of this operator whose tensors live on ``device``."""
        return self
