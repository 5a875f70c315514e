"""Settings of a diffusion reconstruction, with the defaults of Chung & Ye 2024
(docs/architecture.md §5–6).

``None`` means "the modality's default": adaptation steps ``L`` 10 for CT and 5 for MRI,
learning rate 1e-3 for CT and 1e-4 for MRI, CG proximal weight ``γ`` none for CT (plain normal
equations from ``x̂₀``) and 5 for MRI; for mbir's ADMM, CT has hard data consistency with
``λ`` scaled to the intensities (``ρ`` dimensionless) and MRI the proximal term
``0.2/2 ‖x − x̂₀‖²`` (DDS's ``γ`` 5) with a 10× stronger z-coupling, ``λ`` 1e-3 and ``ρ``
1e-2 in the prior's units (hard data consistency on MRI is 4–9 dB worse with the default
timestep spacing; BENCHMARKS "D3IP mbir on MRI").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from napari_ddip.precision import check_precision, resolve_precision

#: Methods of the diffusion engine and what each adapts.
DIFFUSION_METHODS = {
    "dds": "DDS: prior + CG data consistency, no adaptation",
    "dps": "DPS: gradient of the measurement loss through the network",
    "ddnm": "DDNM: null-space projection by CG, no adaptation",
    "ddip": "DDIP: its own LoRA per slice (SCD generalised)",
    "d3ip": "D3IP base: one LoRA for the volume, K random slices per step",
    "d3ip-mbir": "D3IP mbir: ADMM-TV along z in data consistency, K contiguous slices",
    "d3ip-meta": "D3IP meta: Reptile meta-LoRA, then per-slice fine-tuning",
}
ADAPTIVE = ("ddip", "d3ip", "d3ip-mbir", "d3ip-meta")


@dataclass(frozen=True)
class Bound:
    """The values a numeric setting allows: finite, from ``low`` (excluded if ``open``) up to
    ``high`` (None: no upper limit), whole numbers only if ``whole``."""

    low: float
    high: float | None = None
    open: bool = False
    whole: bool = False

    def describe(self) -> str:
        """The allowed range in words, as in "``name`` must …"."""
        if self.high is not None:
            return f"be in {'(' if self.open else '['}{self.low:g}, {self.high:g}]"
        if self.low == 0:
            return "be positive" if self.open else "not be negative"
        return f"be {'greater than' if self.open else 'at least'} {self.low:g}"

    def check(self, name: str, value: float) -> None:
        """Raise ``ValueError`` naming ``name`` and the range if ``value`` is outside it."""
        above = value > self.low if self.open else value >= self.low
        below = self.high is None or value <= self.high
        if not (math.isfinite(value) and above and below):
            raise ValueError(f"{name} must {self.describe()}, got {value}")
        if self.whole and not float(value).is_integer():
            raise ValueError(f"{name} must be a whole number, got {value}")


COUNT = Bound(0, whole=True)  # a number of steps or iterations that may be zero
AT_LEAST_ONE = Bound(1, whole=True)
NON_NEGATIVE = Bound(0)
POSITIVE = Bound(0, open=True)
FRACTION = Bound(0, 1)


def check_bounds(values: Mapping[str, Any], bounds: Mapping[str, Bound]) -> None:
    """Raise ``ValueError`` for the first of ``values`` outside its bound in ``bounds``
    (``None``, "automatic", is not checked)."""
    for name, bound in bounds.items():
        if values.get(name) is not None:
            bound.check(name, values[name])


#: The range of every numeric setting of :class:`ReconConfig` (``None``: automatic, allowed).
SETTING_BOUNDS: dict[str, Bound] = {
    "nfe": AT_LEAST_ONE,
    "eta": FRACTION,
    "timestep_power": Bound(1),
    "adapt_steps": COUNT,
    "k_slices": AT_LEAST_ONE,
    "lr": POSITIVE,
    "lora_rank": AT_LEAST_ONE,
    "t_min": COUNT,
    "t_max": COUNT,
    "cg_iters": COUNT,
    "gamma": POSITIVE,
    "admm_iters": AT_LEAST_ONE,
    "admm_cg": AT_LEAST_ONE,
    "admm_lam": NON_NEGATIVE,
    "admm_rho": POSITIVE,
    "mbir_anchor": NON_NEGATIVE,
    "meta_step_start": FRACTION,
    "meta_step_end": FRACTION,
    "dps_step": NON_NEGATIVE,
    "ddnm_cg_iters": AT_LEAST_ONE,
    "slice_batch": AT_LEAST_ONE,
    "preview_every": COUNT,
    "samples": AT_LEAST_ONE,
}


@dataclass(frozen=True)
class ReconConfig:
    """Every setting of the diffusion engine (the defaults of Chung & Ye 2024).

    Attributes:
        method: one of :data:`DIFFUSION_METHODS`.
        prior: shipped prior name, ``"default"``, or a ``.safetensors`` path.
        nfe: sampling steps (network evaluations per slice).
        eta: DDS stochasticity ``η``.
        timestep_power: spacing of the ``nfe`` timesteps, ``t_i ∝ (i / (nfe − 1))^p``: 1 is
            the paper's even spacing, larger values spend more of the steps near ``t = 0``,
            where the last denoising steps set the detail; with the default 5 DDS gains
            2.2–3.7 dB over 1 (BENCHMARKS "Timestep spacing").
        adapt_steps: ``L`` optimiser steps per sampling step (None: 10 CT, 5 MRI; 0 with a
            warm start uses its states as they are).
        k_slices: ``K`` slices per adaptation step (D3IP).
        lr: AdamW learning rate (None: 1e-3 CT, 1e-4 MRI).
        keep_optimizer: carry the AdamW state of the shared LoRA from one sampling step to the
            next (D3IP methods) instead of a fresh optimiser per step. A fresh Adam's first
            step moves every parameter by about ``lr`` whatever its gradient.
        lora_rank: LoRA rank.
        t_min, t_max: adaptation horizon (adapt only for ``t_min ≤ t ≤ t_max``).
        cg_iters: CG iterations of the data consistency (also inside the adaptation loss).
        gamma: proximal weight of the data consistency ``(I + γAᴴA/‖A‖²)`` (None: CT none,
            MRI 5).
        admm_iters, admm_cg: ADMM iterations and CG steps per ADMM iteration (mbir).
        admm_lam, admm_rho: z-TV weight and ADMM penalty (None: CT ``λ`` scaled to the
            intensities and ``ρ`` dimensionless, see ``admm_tv``; MRI 1e-3 and 1e-2).
        mbir_anchor: weight ``μ`` of a proximal term ``μ/2 ‖x − x̂₀‖²`` in mbir's ADMM, next to
            the normalised data term and the z-TV (None: CT 0, MRI 0.2; 0: none, the data
            consistency is hard as in DiffusionMBIR; 0.2 matches the CG data consistency with
            ``γ`` 5).
        meta_step_start, meta_step_end: Reptile step ``ε``, decaying linearly over the horizon.
        dps_step: DPS step ``ζ`` on ``∇‖y − A x̂₀‖ / ‖A‖``.
        ddnm_cg_iters: CG iterations of DDNM's pseudo-inverse.
        init_pinv: start from ``√ᾱ·pinv(y) + √(1−ᾱ)·n`` instead of pure noise (Chung & Ye
            2024, §3.3).
        slerp: correlate the initial noise across slices by slerp between two draws.
        slice_batch: slices per sampling batch (None: 8 on CPU, 64 on CUDA); on CUDA one
            network call, on the CPU their patches go through the network in cache-sized
            chunks (``napari_ddip.prior.model.CPU_PIXELS_PER_CALL``).
        precision: arithmetic of the network passes, one of ``auto`` (TF32 on CUDA, float32
            elsewhere), ``fp32``, ``tf32`` (CUDA) or ``bf16`` (see
            :mod:`napari_ddip.precision`).
        preview_every: yield a preview every this many sampling steps (0: never).
        samples: posterior samples; more than one gives their mean and per-voxel std (D3IP
            methods adapt once and reuse the shared LoRA for the further samples).
        seed: seed of every random draw (noise, slices, patch offsets, LoRA init).
    """

    method: str = "d3ip"
    prior: str = "default"
    nfe: int = 50
    eta: float = 0.85
    timestep_power: float = 5.0
    adapt_steps: int | None = None
    k_slices: int = 3
    lr: float | None = None
    keep_optimizer: bool = False
    lora_rank: int = 4
    t_min: int = 20
    t_max: int = 980
    cg_iters: int = 5
    gamma: float | None = None
    admm_iters: int = 5
    admm_cg: int = 5
    admm_lam: float | None = None
    admm_rho: float | None = None
    mbir_anchor: float | None = None
    meta_step_start: float = 1.0
    meta_step_end: float = 0.1
    dps_step: float = 1.0
    ddnm_cg_iters: int = 20
    init_pinv: bool = True
    slerp: bool = True
    slice_batch: int | None = None
    precision: str = "auto"
    preview_every: int = 5
    samples: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.method not in DIFFUSION_METHODS:
            known = ", ".join(DIFFUSION_METHODS)
            raise ValueError(f"unknown diffusion method {self.method!r} (methods: {known})")
        check_bounds(vars(self), SETTING_BOUNDS)
        check_precision(self.precision)
        if self.t_min > self.t_max:
            raise ValueError(f"need t_min <= t_max, got {self.t_min}, {self.t_max}")

    @property
    def adapts(self) -> bool:
        """Whether the method adapts the prior."""
        return self.method in ADAPTIVE

    def resolved(self, kind: str, device_type: str) -> ReconConfig:
        """A copy with every ``None`` replaced by the default for ``kind`` (``ct``/``mri``)."""
        mri = kind == "mri"

        def pick(value: Any, ct: Any, mri_value: Any) -> Any:
            return value if value is not None else (mri_value if mri else ct)

        return replace(
            self,
            adapt_steps=pick(self.adapt_steps, 10, 5),
            lr=pick(self.lr, 1e-3, 1e-4),
            gamma=pick(self.gamma, None, 5.0),
            admm_lam=pick(self.admm_lam, None, 1e-3),
            admm_rho=pick(self.admm_rho, None, 1e-2),
            mbir_anchor=pick(self.mbir_anchor, 0.0, 0.2),
            slice_batch=self.slice_batch or (64 if device_type == "cuda" else 8),
            precision=resolve_precision(self.precision, device_type),
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
