"""The linear-operator interface every forward model implements.

Images are batched over slices: ``x`` has shape ``(Z, Y, X)`` (real float32 for CT, complex64
for MRI). Measurements have an operator-specific shape whose first axis is also ``Z``, so any
subset of slices can be passed through the same operator (``op.forward(x[i:j])``). Adjoints are
taken under the real inner product of :func:`batch_dot`, summed over the slices.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch


def batch_dot(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Real part of ``<a, b> = Σ conj(a)·b`` per slice (all axes but the first): shape ``(Z,)``."""
    product = a.conj() * b if a.is_complex() else a * b
    return product.real.reshape(a.shape[0], -1).sum(dim=1)


class LinearOperator(ABC):
    """A linear map ``A`` from images ``(Z, Y, X)`` to measurements ``(Z, ...)``.

    Subclasses implement :meth:`forward`, :meth:`adjoint` (the exact adjoint, so that
    ``<A x, y> == <x, Aᴴ y>`` to float precision) and :meth:`pinv` (a fast approximate inverse,
    the engine's starting point and intensity scale: ``ParallelBeamCT.fbp`` for CT,
    ``MRIOperator.zero_filled`` for MRI). All three are differentiable in torch.
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
        """Fast approximate inverse of ``y`` (the modality's own: FBP, zero-filled); returns
        ``(Z, Y, X)``."""

    @property
    def measurement_shape(self) -> tuple[int, ...] | None:
        """Shape of one slice's measurement (``y`` is ``(Z, *measurement_shape)``); None if
        the operator does not fix it."""
        return None

    @property
    def n_slices(self) -> int | None:
        """The number of slices ``Z`` the operator holds per-slice data for (masks, coil maps);
        None when it takes any number."""
        return None

    def check_measurement(self, y: torch.Tensor) -> None:
        """Raise ``ValueError`` naming the mismatch unless ``y`` is a measurement of this
        operator: complex if :attr:`is_complex` else real, of shape ``(Z, *measurement_shape)``
        with ``Z`` = :attr:`n_slices` when that is set."""
        name = type(self).__name__
        if y.is_complex() != self.is_complex:
            needed = "complex" if self.is_complex else "real"
            raise ValueError(f"{name} takes {needed} measurements, got {y.dtype} data")
        shape, n = self.measurement_shape, self.n_slices
        if shape is None:
            return
        expected = f"({n if n is not None else 'Z'}, {', '.join(map(str, shape))})"
        if y.ndim != len(shape) + 1 or tuple(y.shape[1:]) != shape:
            raise ValueError(
                f"the measurement has shape {tuple(y.shape)} but {name} takes {expected}"
            )
        if n is not None and y.shape[0] != n:
            raise ValueError(
                f"the measurement has {y.shape[0]} slices but {name} holds per-slice data for "
                f"{n}: it takes {expected}"
            )

    def normal(self, x: torch.Tensor) -> torch.Tensor:
        """``Aᴴ A x``."""
        return self.adjoint(self.forward(x))

    @torch.no_grad()
    def norm(self, like: torch.Tensor, n_iter: int = 20, seed: int = 0) -> float:
        """``‖A‖²``, the largest eigenvalue of ``AᴴA``, by ``n_iter`` steps of power iteration
        from a seeded random image shaped like ``like`` ``(Z, Y, X)`` (its dtype and device)."""
        generator = torch.Generator(device="cpu").manual_seed(seed)
        x = torch.randn(like.shape, generator=generator, dtype=like.dtype).to(like.device)
        value = torch.zeros(())
        for _ in range(n_iter):
            x = x / batch_dot(x, x).sum().sqrt()
            hx = self.normal(x)
            value = batch_dot(x, hx).sum()
            x = hx
        return float(value)

    def subset(self, index: slice | torch.Tensor) -> LinearOperator:
        """The operator restricted to some slices (identity for slice-independent operators)."""
        return self

    def to(self, device: torch.device | str) -> LinearOperator:
        """A copy of this operator whose tensors live on ``device``."""
        return self


class MaskedOperator(LinearOperator):
    """``A_M x = M ⊙ A x``: ``op`` keeping only the measurement entries where ``keep`` (a
    boolean ``measurement_shape`` mask, the same for every slice) is true; the adjoint is
    ``Aᴴ (M ⊙ y)``. Splits a measurement into a part to fit and a part held out to score a
    fit (as SSDU splits k-space, Yaman et al. 2020).
    """

    def __init__(self, op: LinearOperator, keep: torch.Tensor) -> None:
        self.op, self.keep = op, keep
        self.is_complex = op.is_complex

    @property
    def image_shape(self) -> tuple[int, int]:
        return self.op.image_shape

    @property
    def measurement_shape(self) -> tuple[int, ...] | None:
        return self.op.measurement_shape

    @property
    def n_slices(self) -> int | None:
        return self.op.n_slices

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.op.forward(x) * self.keep

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        return self.op.adjoint(y * self.keep)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """The full operator's fast inverse of the kept entries (zeros elsewhere)."""
        return self.op.pinv(y * self.keep)

    def subset(self, index: slice | torch.Tensor) -> LinearOperator:
        return MaskedOperator(self.op.subset(index), self.keep)

    def to(self, device: torch.device | str) -> LinearOperator:
        return MaskedOperator(self.op.to(device), self.keep.to(device))
