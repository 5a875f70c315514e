"""Cartesian MRI: centred orthonormal FFT and the single-coil / SENSE multi-coil operator.

k-space is centred (DC in the middle, at index ``n // 2``) and orthonormal, so ``ifft2c`` is the
exact adjoint and inverse of ``fft2c`` and image and k-space have the same energy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from napari_ddip.physics.operator import LinearOperator

_AXES = (-2, -1)


def fft2c(x: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2D FFT over the last two axes (ifftshift → fft2 → fftshift)."""
    x = torch.fft.ifftshift(x, dim=_AXES)
    return torch.fft.fftshift(torch.fft.fft2(x, dim=_AXES, norm="ortho"), dim=_AXES)


def ifft2c(k: torch.Tensor) -> torch.Tensor:
    """Centred orthonormal 2D inverse FFT over the last two axes; inverse and adjoint of fft2c."""
    k = torch.fft.ifftshift(k, dim=_AXES)
    return torch.fft.fftshift(torch.fft.ifft2(k, dim=_AXES, norm="ortho"), dim=_AXES)


class MRIOperator(LinearOperator):
    """Undersampled Cartesian MRI, single-coil ``A = M F`` or SENSE ``A x = M F(S x)``.

    Args:
        mask: sampling mask ``(ky, kx)`` shared by all slices, or ``(Z, ky, kx)`` per slice;
            bool or float (real weights; 1 = sampled). numpy or torch.
        maps: coil sensitivities ``(Z, C, Y, X)`` complex, or ``None`` for a single coil.
        eps: regulariser of the SENSE combination in :meth:`zero_filled`.

    Images are ``(Z, Y, X)`` complex64 with ``(Y, X) = (ky, kx)``; measurements are
    ``(Z, ky, kx)`` (single coil) or ``(Z, C, ky, kx)`` (multi-coil). The operator's tensors
    decide the device.
    """

    is_complex = True

    def __init__(
        self,
        mask: np.ndarray | torch.Tensor,
        maps: np.ndarray | torch.Tensor | None = None,
        eps: float = 1e-6,
    ) -> None:
        self.mask = torch.as_tensor(mask).to(torch.float32)
        if self.mask.ndim not in (2, 3):
            raise ValueError(f"mask must be (ky, kx) or (Z, ky, kx), got {tuple(self.mask.shape)}")
        self.maps = None if maps is None else torch.as_tensor(maps).to(torch.complex64)
        if self.maps is not None:
            self.maps = self.maps.to(self.mask.device)
            if self.maps.ndim != 4 or tuple(self.maps.shape[-2:]) != self.image_shape:
                raise ValueError(
                    f"maps must be (Z, C, {self.image_shape[0]}, {self.image_shape[1]}), "
                    f"got {tuple(self.maps.shape)}"
                )
            if self.mask.ndim == 3 and self.mask.shape[0] != self.maps.shape[0]:
                raise ValueError(
                    f"the per-slice mask has {self.mask.shape[0]} slices but the coil maps "
                    f"{self.maps.shape[0]}"
                )
        self.eps = float(eps)

    @property
    def image_shape(self) -> tuple[int, int]:
        return (int(self.mask.shape[-2]), int(self.mask.shape[-1]))

    @property
    def n_coils(self) -> int:
        return 1 if self.maps is None else int(self.maps.shape[1])

    @property
    def measurement_shape(self) -> tuple[int, ...]:
        """Per-slice k-space shape: ``(ky, kx)`` single-coil, ``(C, ky, kx)`` multi-coil."""
        return self.image_shape if self.maps is None else (self.n_coils, *self.image_shape)

    @property
    def n_slices(self) -> int | None:
        """``Z`` of a per-slice mask or of the coil maps; None for one mask and one coil."""
        if self.maps is not None:
            return int(self.maps.shape[0])
        return int(self.mask.shape[0]) if self.mask.ndim == 3 else None

    def _slice_mask(self) -> torch.Tensor:
        """Mask broadcastable against measurements ``(Z, [C,] ky, kx)``."""
        if self.mask.ndim == 3 and self.maps is not None:
            return self.mask[:, None]
        return self.mask

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """k-space ``(Z, [C,] ky, kx)`` of images ``(Z, Y, X)``."""
        if self.maps is not None:
            x = x[:, None] * self.maps
        return self._slice_mask() * fft2c(x)

    def adjoint(self, y: torch.Tensor) -> torch.Tensor:
        """``Aᴴ y = Σ_c conj(S_c) F⁻¹(M y_c)``, ``(Z, Y, X)``."""
        x = ifft2c(self._slice_mask() * y)
        if self.maps is None:
            return x
        return (self.maps.conj() * x).sum(dim=1)

    def pinv(self, y: torch.Tensor) -> torch.Tensor:
        """The fast pseudo-inverse: :meth:`zero_filled`."""
        return self.zero_filled(y)

    def zero_filled(self, y: torch.Tensor) -> torch.Tensor:
        """Zero-filled inverse FFT ``Aᴴ y`` (single coil) or its SENSE combination
        ``Aᴴ y / (Σ|S|² + eps)`` (multi-coil) of k-space ``(Z, [C,] ky, kx)``: ``(Z, Y, X)``."""
        x = self.adjoint(y)
        if self.maps is None:
            return x
        return x / ((self.maps.abs() ** 2).sum(dim=1) + self.eps)

    def subset(self, index: slice | torch.Tensor) -> MRIOperator:
        """The operator for slices ``index`` (per-slice masks and maps are sliced along Z)."""
        mask = self.mask[index] if self.mask.ndim == 3 else self.mask
        maps = None if self.maps is None else self.maps[index]
        return MRIOperator(mask, maps, eps=self.eps)

    def to(self, device: torch.device | str) -> MRIOperator:
        maps = None if self.maps is None else self.maps.to(device)
        return MRIOperator(self.mask.to(device), maps, eps=self.eps)

    @property
    def acceleration(self) -> float:
        """``1 / mean(mask)`` over all slices."""
        return float(1.0 / self.mask.mean())

    def geometry(self) -> dict[str, Any]:
        """JSON-serialisable summary (the mask and maps themselves travel as arrays)."""
        return {
            "kind": "mri",
            "image_shape": list(self.image_shape),
            "n_coils": self.n_coils,
            "acceleration": self.acceleration,
            "per_slice_mask": self.mask.ndim == 3,
        }
