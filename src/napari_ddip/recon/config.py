"""Settings of a diffusion reconstruction (:class:`ReconConfig`), after Chung & Ye 2024
(docs/architecture.md §5–6).

``None`` means automatic: :meth:`ReconConfig.resolved` replaces it by the default for the
modality (CT or MRI) and the kind of prior (a denoiser prior such as FFDNet, or a diffusion
prior); each setting's help text (docs/cli.md, "Settings") says what its automatic value is,
and BENCHMARKS "How the defaults were chosen" why.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from napari_ddip.precision import check_precision, resolve_precision
from napari_ddip.prior.symmetry import check_ensemble
from napari_ddip.recon.diffusion_methods import (
    ADAPTATION,
    CG,
    GUIDANCE,
    MBIR,
    NOISE_AWARE,
    PROJECT,
    REPTILE,
    SAMPLING,
    SHARED_LORA,
    DiffusionMethod,
    diffusion_method,
)


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

#: The automatic ``start_level`` as a multiple of the pseudo-inverse's noise estimate
#: (``Problem.pinv_noise``): 7 puts the ×8 MNI tune slab at 0.048, next to its best fixed
#: level 0.05 (BENCHMARKS "How the defaults were chosen").
START_PER_ALIASING = 7.0


def check_bounds(values: Mapping[str, Any], bounds: Mapping[str, Bound]) -> None:
    """Raise ``ValueError`` for the first of ``values`` outside its bound in ``bounds``
    (``None``, "automatic", is not checked)."""
    for name, bound in bounds.items():
        if values.get(name) is not None:
            bound.check(name, values[name])


@dataclass(frozen=True)
class Setting:
    """A setting a method takes: its default, type, allowed range and group.

    Attributes:
        default: the value when the user gives none (``None``: automatic).
        kind: its type, ``bool``, ``int``, ``float`` or ``str`` (a value given as text is
            parsed as this; ``None`` stays allowed where it is the default).
        bound: the allowed range of a numeric setting (None for the others).
        group: which diffusion methods take it (see
            :attr:`~napari_ddip.recon.diffusion_methods.DiffusionMethod.groups`).
        help: one line on what it does and what ``auto`` means: the one text of
            ``reconstruct --help``, the Reconstruct widget's tooltip and docs/cli.md
            (:mod:`napari_ddip.settings_doc`).
    """

    default: Any
    kind: type
    bound: Bound | None = None
    group: str = SAMPLING
    help: str = ""


def setting(
    default: Any,
    bound: Bound | None = None,
    group: str = SAMPLING,
    kind: type = float,
    *,
    help: str,
):
    """A :class:`ReconConfig` field with its :class:`Setting` (``kind``: the type of a setting
    whose default is ``None``; otherwise the default's type; ``help``: its one line)."""
    typed = kind if default is None else type(default)
    record = Setting(default, typed, bound, group, help)
    return field(default=default, metadata={"setting": record})


@dataclass(frozen=True)
class ReconConfig:
    """Every setting of the diffusion engine (the defaults of Chung & Ye 2024).

    Attributes:
        method: a name in :data:`~napari_ddip.recon.diffusion_methods.DIFFUSION_METHODS`.
        prior: shipped prior name (``ffdnet-color``: the pretrained FFDNet denoiser, the
            best on real anatomy), ``"default"`` (the ellipse diffusion prior), or a
            ``.safetensors`` path.
        nfe: sampling steps (network evaluations per slice).
        ensemble: the network's ``ε̂`` of each slice averaged over this many of its
            symmetries (1, 2, 4 or 8: half turn, transposes, quarter turns and flips;
            :mod:`napari_ddip.prior.symmetry`), at that many network calls per step. Tune
            slab, FFDNet, NFE 50: ×8 MRI with DDS 36.53 / 36.71 / 36.81 / 36.89 dB at 1 / 2
            / 4 / 8 (100 steps instead: 36.45); CT +0.11 dB with DDS, +0.05 dB with DDS + 3D
            TV at 4. 1 by default, for the time (the equivariant self-supervision gains more
            for its time: BENCHMARKS.md, "Equivariant self-supervision").
        eta: DDS stochasticity ``η``.
        renoise: ``λ``, the share of the next step's noise put back after the data
            consistency, ``x_{t'} = √ᾱ_{t'} x̃₀ + λ σ_{t'} (η z + √(1 − η²) ε̂)``
            (:func:`~napari_ddip.recon.sampler.dds_update`). 1 is DDS; 0 feeds the denoiser
            the consistent image itself at each lower level: the annealed plug-and-play
            of DPIR (Zhang et al. 2022, half-quadratic splitting with decreasing noise
            levels), which needs a denoiser prior (a diffusion network expects the noise of
            its level). Automatic: 0 on MRI with a denoiser prior, else 1 (tune slab,
            FFDNet: DDS at NFE 50 on ×8 MRI 35.71 → 36.09 dB with 0; DDS + 3D TV at NFE 20
            on CT 35.95 → 35.23, the re-injected noise keeps the measurement's noise from
            being fitted).
        timestep_power: spacing of the ``nfe`` timesteps, ``t_i ∝ (i / (nfe − 1))^p``: 1 is
            the paper's even spacing, larger values spend more of the steps near ``t = 0``,
            where the last denoising steps set the detail; with 5, the automatic value for a
            diffusion prior's linear β, DDS gains 2.2–3.7 dB over 1 (BENCHMARKS "Sampler
            settings and the ellipse priors"). A denoiser prior's schedule is geometric in
            noise level (:class:`~napari_ddip.prior.schedule.LevelSchedule`): 1, its
            automatic value, spaces the steps evenly in log noise level (2: the same within
            0.1 dB).
        start_level: the noise level ``s_t`` (image units) of the first sampling step, which
            starts from the pseudo-inverse noised to it (needs ``init_pinv``; CCDF, Chung et
            al. 2022), so that all ``nfe`` steps are spent below it. None: the prior's highest
            level, except on MRI with a denoiser prior for a method without adaptation
            (:meth:`starts_at_aliasing`), which starts at :data:`START_PER_ALIASING` times
            the aliasing of the zero-filled image (``Problem.pinv_noise``): no higher level
            is needed to remove it, and the steps go where the detail is set (tune slab, DDS
            at NFE 50: 36.09 / 36.28 / 36.42 / 36.54 / 36.60 dB from 0.5, the top, / 0.2 /
            0.1 / 0.05 / 0.02; at NFE 20 34.48 → 35.11 from 0.05). A fixed 0.05 failed on
            the b0 scan, whose aliasing is twice the MNI slab's, at 20 steps (32.31 dB
            against 33.48 from the top). D3IP keeps the top: its adaptation lives at levels
            above 0.04 (from 0.1 it loses 0.2 dB on the tune slab).
        adapt_steps: ``L`` optimiser steps per sampling step (None: 10 CT, 5 MRI; 0 with a
            warm start uses its states as they are).
        k_slices: ``K`` slices per adaptation step (D3IP).
        lr: AdamW learning rate (None: 1e-4 with a diffusion prior, 1e-5 with a denoiser
            prior; the paper's 1e-3 for CT costs detail on real anatomy with the ellipse prior
            and 6 dB with the FFDNet prior, whose D3IP comes closer to DDS the smaller the
            rate: BENCHMARKS "Quality on real anatomy").
        keep_optimizer: carry the AdamW state of the shared LoRA from one sampling step to the
            next (D3IP methods) instead of a fresh optimiser per step. A fresh Adam's first
            step moves every parameter by about ``lr`` whatever its gradient.
        lora_rank: LoRA rank.
        holdout: fraction of the measurement's entries (a fixed random choice, seeded)
            held out of the adaptation: its loss fits the rest and scores the held-out part,
            ``‖M_Λ(A·DC_Θ(x̂₀(θ)) − y)‖² / ‖M_Λ y‖²`` — the split of SSDU (Yaman et al. 2020),
            so the LoRA cannot lower the loss by fitting noise or aliasing; 0: the paper's
            loss on all of it (None: 0 for CT; 0.25 for MRI, where the hard consistency
            makes ``A x̃₀ = y`` on the sampled k-space, so the paper's loss is zero whatever
            the LoRA and D3IP would sample as DDS at twice its time).
        discrepancy: ``τ`` of Morozov's discrepancy principle: a LoRA's adaptation ends for
            the rest of the run (sample and pass) at the first adaptation step whose loss is
            at most ``τ`` times the share of it the measurement noise accounts for
            (``Problem.noise_share``, ``m·σ²/‖y‖²``): below that the loss falls only by
            fitting noise. On the MNI152 60-view CT of BENCHMARKS ("What the adaptation
            changes", all eight slices per step) D3IP with FFDNet stops in the third of its
            twenty adapted steps with the same result (35.59 dB), with the ellipse prior
            after 9 of 11, keeping +0.06 of its +0.08 dB; at the defaults D3IP takes 1.9× DDS's
            time there instead of 6×. Needs the noise
            (``Problem.known_noise``): estimated on CT, on MRI only with ``noise_std``; 0:
            adapt at every step of the horizon, as the paper.
        t_min, t_max: adaptation horizon (adapt only for ``t_min ≤ t ≤ t_max``). ``t_min``
            is automatic: 20, and 600 with a denoiser prior (noise level ≥ 0.04 on the
            shipped geometric schedule), whose adapted LoRA acts only inside the horizon:
            FFDNet outputs the image itself, and a LoRA trained at high levels distorts the
            near-identity map of the low ones (tune slab, D3IP at NFE 20 on ×8 MRI: 24.7 dB
            with the LoRA kept at every level from t 20, 34.5 dB from t 612 with the base
            network below; CT 35.0 dB).
        cg_iters: CG iterations of the data consistency (also inside the adaptation loss).
        gamma: proximal weight of the data consistency ``(I + γAᴴA/‖A‖²)`` (None: a hard
            consistency, CG on the normal equations; the noise-aware weight of
            ``prior_error`` where that is on. On MRI hard is 0.3–1.3 dB better than γ 5 on
            the held-out slab, BENCHMARKS "How the defaults were chosen").
        admm_iters, admm_cg: ADMM iterations and CG steps per ADMM iteration (mbir).
        admm_lam, admm_rho: TV weight and ADMM penalty (None: CT ``λ`` ``tv_share`` times
            ADMM-TV's own noise-aware weight and ``ρ`` dimensionless as ADMM-TV's, see
            ``admm_tv``; MRI 5e-5 and 1e-2 in the prior's units: a TV 20× weaker than
            DiffusionMBIR's 1e-3, which beside a nearly hard data consistency keeps the
            prior's detail and adds the sharp edges; on the held-out slab at 50 steps DDS +
            3D TV 37.73 dB against 35.13 at λ 1e-3 and μ 0.2, DDS with CG 36.53; D3IP mbir
            at 20 steps 35.25 against 34.27).
        tv_share: on CT with ``admm_lam`` automatic, the TV consistency's ``λ`` as a share of
            ADMM-TV's own (``solvers.classical.default_tv_weight``; None: the consistency's
            own, ``Consistency.tv_share``, 0.5 for 3D TV and 1 for mbir's TV along z). With
            the prior beside it, 3D TV at ADMM-TV's weight over-smooths (held-out slab, DDS +
            3D TV at ζ 8: 36.39 / 36.72 / 36.80 / 36.70 / 36.49 dB at share 1 / 0.7 / 0.5 /
            0.35 / 0.25; ADMM-TV 36.65).
        mbir_anchor: weight ``μ`` of a proximal term ``μ/2 ‖x − x̂₀‖²`` in mbir's ADMM, next to
            the normalised data term and the TV (None: CT 0, MRI 0.02: nearly hard, while
            0.2 matches a CG data consistency with ``γ`` 5; 0: none, the data consistency is
            hard as in DiffusionMBIR, 36.34 dB on the held-out slab at λ 1e-4 against 37.60
            at μ 0.02).
        noise_std: standard deviation of the measurement noise in the measurement's units
            (None: estimated from the data, ``physics.noise.estimate_noise_std``).
        prior_error: ``ζ``, the noise-aware data consistency's model of the prior estimate's
            error, ``ζ·s_t`` at a step of noise level ``s_t``; it sets the proximal weight
            from ``noise_std`` (``Problem.proximal_weight``); 0: off (None: on CT the data
            consistency's own, ``Consistency.auto_prior_error``: 8, and 2 with mbir's TV and
            with CG under a diffusion prior; off for MRI, whose noise estimate cannot tell
            noise from the fine detail of noise-free k-space; chosen on a held-out MNI152
            slab, BENCHMARKS "Quality on real anatomy").
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
            elsewhere), ``fp32``, ``tf32`` (CUDA) or ``bf16`` (float32 at noise levels below
            ``BF16_MIN_LEVEL``; see :mod:`napari_ddip.precision`).
        preview_every: yield a preview every this many sampling steps (0: never; None:
            ``max(1, nfe // 8)``, so the first comes within the first eighth of the run).
        samples: posterior samples; more than one gives their mean and per-voxel std (D3IP
            methods adapt once and reuse the shared LoRA for the further samples).
        equivariant: ``N``, the rotations of the equivariant self-supervision that follows
            the method (:mod:`napari_ddip.recon.equivariant`): the prior fine-tuned as a
            denoiser to undo what the method does to ``N`` rotated copies of its reconstruction,
            re-measured by the measurement's own operator, then applied to the
            reconstruction; ``N + 1`` reconstructions in all, ``N + 2`` when the copies
            carry noise (the unrotated copy too; 0: off).
        equivariant_steps: Adam steps of that fine-tuning.
        equivariant_slices: the copies are of at most this many slices, a contiguous block
            at the centre of the volume (0: every slice), so that the self-supervision of a
            large volume costs ``N + 1`` reconstructions of the block, not of the volume; the
            fine-tuned prior is applied to every slice.
        seed: seed of every random draw (noise, slices, patch offsets, LoRA init).
    """

    method: str = "dds-tv"
    prior: str = setting(
        "ffdnet-color",
        help=(
            "a shipped prior by name (ffdnet-color, the pretrained FFDNet denoiser; the name "
            "'default' stands for the ellipse diffusion prior ellipse-patch-v) or a "
            ".safetensors file with its .json beside it"
        ),
    )
    nfe: int = setting(
        50, AT_LEAST_ONE, help="sampling steps: network evaluations per slice (the D3IP paper: 50)"
    )
    ensemble: int = setting(
        1,
        AT_LEAST_ONE,
        help=(
            "the network's estimate averaged over 1, 2, 4 or 8 rotations and transposes of "
            "each slice, at that many network calls per step"
        ),
    )
    eta: float = setting(
        0.85,
        FRACTION,
        help=(
            "stochasticity η of the sampler: the share of fresh noise at each step (0: "
            "deterministic)"
        ),
    )
    renoise: float | None = setting(
        None,
        FRACTION,
        help=(
            "share of the next step's noise level the sampler puts back (0: none, a "
            "deterministic annealing as DPIR; auto: 0 on MRI with a denoiser prior, else 1)"
        ),
    )
    timestep_power: float | None = setting(
        None,
        Bound(1),
        help=(
            "spacing of the sampling steps, t ∝ (i/(nfe−1))^p; larger spends more steps near "
            "t = 0 (auto: 5 with a diffusion prior; 1 with a denoiser prior: even in log noise)"
        ),
    )
    start_level: float | None = setting(
        None,
        POSITIVE,
        help=(
            "noise level of the first sampling step, from the pseudo-inverse noised to it "
            "(auto: 7× the zero-filled image's aliasing on MRI with a denoiser prior and no "
            "adaptation; else the top)"
        ),
    )
    adapt_steps: int | None = setting(
        None,
        COUNT,
        ADAPTATION,
        int,
        help=(
            "L: LoRA optimiser steps per sampling step (auto: 10 CT, 5 MRI; 0 with a warm "
            "start uses its states as they are)"
        ),
    )
    k_slices: int = setting(
        3,
        AT_LEAST_ONE,
        SHARED_LORA,
        help="K: slices drawn for each adaptation step of the shared LoRA",
    )
    lr: float | None = setting(
        None,
        POSITIVE,
        ADAPTATION,
        help="AdamW learning rate of the LoRA (auto: 1e-4; 1e-5 with a denoiser prior)",
    )
    keep_optimizer: bool = setting(
        False,
        group=SHARED_LORA,
        help=(
            "carry the shared LoRA's AdamW state from one sampling step to the next (off: a "
            "fresh optimiser per step)"
        ),
    )
    lora_rank: int = setting(4, AT_LEAST_ONE, ADAPTATION, help="rank of the LoRA adapters")
    holdout: float | None = setting(
        None,
        Bound(0, 0.5),
        ADAPTATION,
        help=(
            "fraction of the measurement entries left out of the adaptation's data "
            "consistency and scored by its loss (0: fit and score all of it, as the paper; "
            "auto: 0 CT, 0.25 MRI)"
        ),
    )
    discrepancy: float | None = setting(
        None,
        NON_NEGATIVE,
        ADAPTATION,
        help=(
            "τ: a LoRA stops adapting for the rest of the run once its loss is at most τ times "
            "the noise's share of it (auto: 1; needs a known noise: CT or noise_std; 0: never)"
        ),
    )
    t_min: int | None = setting(
        None,
        COUNT,
        ADAPTATION,
        kind=int,
        help=(
            "adapt only at timesteps t ≥ t_min (of 1000; auto: 20, and 600 with a denoiser "
            "prior, whose LoRA acts only there)"
        ),
    )
    t_max: int = setting(980, COUNT, ADAPTATION, help="adapt only at timesteps t ≤ t_max (of 1000)")
    cg_iters: int = setting(
        5,
        COUNT,
        CG.mode,
        help="CG iterations of the data consistency (also inside the adaptation loss)",
    )
    gamma: float | None = setting(
        None,
        POSITIVE,
        CG.mode,
        help=(
            "proximal weight γ of the CG data consistency, (I + γ·AᴴA/‖A‖²) (auto: none, a "
            "hard consistency)"
        ),
    )
    admm_iters: int = setting(
        5, AT_LEAST_ONE, MBIR.mode, help="ADMM iterations of the TV data consistency"
    )
    admm_cg: int = setting(5, AT_LEAST_ONE, MBIR.mode, help="CG steps per ADMM iteration")
    admm_lam: float | None = setting(
        None,
        NON_NEGATIVE,
        MBIR.mode,
        help=(
            "TV weight λ of the ADMM data consistency (auto: CT tv_share × ADMM-TV's own, "
            "from the noise level and the intensities; MRI 5e-5)"
        ),
    )
    tv_share: float | None = setting(
        None,
        POSITIVE,
        MBIR.mode,
        help=(
            "the share of ADMM-TV's own noise-aware weight λ that the TV data consistency "
            "uses when admm_lam is auto on CT, the prior doing the rest (auto: 0.5 for 3D TV, "
            "1 for mbir's TV along z)"
        ),
    )
    admm_rho: float | None = setting(
        None, POSITIVE, MBIR.mode, help="ADMM penalty ρ, dimensionless (auto: 1e-3 CT, 1e-2 MRI)"
    )
    mbir_anchor: float | None = setting(
        None,
        NON_NEGATIVE,
        MBIR.mode,
        help=(
            "weight μ of the pull μ/2·‖x − x̂₀‖² towards the network's estimate in the ADMM "
            "data consistency (auto: 0 CT, 0.02 MRI; 0: hard data consistency)"
        ),
    )
    noise_std: float | None = setting(
        None,
        NON_NEGATIVE,
        NOISE_AWARE,
        help=(
            "standard deviation of the measurement noise in the measurement's units (auto: "
            "estimated from the data); read when prior_error > 0"
        ),
    )
    prior_error: float | None = setting(
        None,
        NON_NEGATIVE,
        NOISE_AWARE,
        help=(
            "ζ: the network estimate's modelled error ζ·s_t at noise level s_t, which sets the "
            "data consistency's weight from noise_std (auto: CT 8, 2 for mbir and for CG with "
            "a diffusion prior; MRI 0; 0: off)"
        ),
    )
    meta_step_start: float = setting(
        1.0,
        FRACTION,
        REPTILE,
        help=(
            "Reptile meta step ε at the first adapted timestep (decays linearly to meta_step_end)"
        ),
    )
    meta_step_end: float = setting(
        0.1, FRACTION, REPTILE, help="Reptile meta step ε at the last adapted timestep"
    )
    dps_step: float = setting(
        1.0, NON_NEGATIVE, GUIDANCE, help="DPS step size ζ on the gradient of ‖y − A·x̂₀‖/‖A‖"
    )
    ddnm_cg_iters: int = setting(
        20, AT_LEAST_ONE, PROJECT.mode, help="CG iterations of DDNM's pseudo-inverse"
    )
    init_pinv: bool = setting(
        True,
        help=(
            "start from the pseudo-inverse with noise of the first step added, instead of "
            "pure noise"
        ),
    )
    slerp: bool = setting(
        True, help="correlate the initial noise across slices (slerp between two draws)"
    )
    slice_batch: int | None = setting(
        None,
        AT_LEAST_ONE,
        kind=int,
        help=(
            "slices per sampling batch (auto: 8 on the CPU, 64 on a GPU); lower it when a GPU "
            "runs out of memory"
        ),
    )
    precision: str = setting(
        "auto",
        help=(
            "network arithmetic: auto (TF32 on a GPU, float32 on the CPU), fp32, tf32 (GPU) or "
            "bf16 (float32 at the lowest noise levels)"
        ),
    )
    preview_every: int | None = setting(
        None,
        COUNT,
        kind=int,
        help="a live preview every this many sampling steps (auto: every eighth; 0: none)",
    )
    samples: int = setting(
        1,
        AT_LEAST_ONE,
        help=(
            "posterior samples: more than one gives their mean and the per-voxel standard deviation"
        ),
    )
    equivariant: int = setting(
        0,
        COUNT,
        help=(
            "rotated, re-measured copies of the result that the prior is fine-tuned on as a "
            "denoiser, then applied (0: off; each costs a reconstruction, and a noisy "
            "measurement one more for the unrotated copy)"
        ),
    )
    equivariant_steps: int = setting(
        300,
        AT_LEAST_ONE,
        help="Adam steps of the equivariant self-supervision's fine-tuning (8 patches of 64²)",
    )
    equivariant_slices: int = setting(
        4,
        COUNT,
        help=(
            "slices of each equivariant copy, a block at the centre of the volume (0: every "
            "slice); the fine-tuned prior is applied to every slice"
        ),
    )
    seed: int = 0

    def __post_init__(self) -> None:
        diffusion_method(self.method)
        check_bounds(vars(self), SETTING_BOUNDS)
        check_precision(self.precision)
        check_ensemble(self.ensemble)
        if self.start_level is not None and not self.init_pinv:
            raise ValueError(
                "start_level needs init_pinv: the sampler starts from the pseudo-inverse"
            )
        if self.t_min is not None and self.t_min > self.t_max:
            raise ValueError(f"need t_min <= t_max, got {self.t_min}, {self.t_max}")

    @property
    def spec(self) -> DiffusionMethod:
        """The record of :attr:`method`."""
        return diffusion_method(self.method)

    def resolved(self, kind: str, device_type: str, denoiser: bool = False) -> ReconConfig:
        """A copy with every ``None`` replaced by the default for ``kind`` (``ct``/``mri``)
        and the prior (``denoiser``: a denoiser prior such as FFDNet)."""
        mri = kind == "mri"

        def pick(value: Any, ct: Any, mri_value: Any) -> Any:
            return value if value is not None else (mri_value if mri else ct)

        values = dict(
            adapt_steps=pick(self.adapt_steps, 10, 5),
            lr=self.lr if self.lr is not None else (1e-5 if denoiser else 1e-4),
            timestep_power=self.timestep_power or (1.0 if denoiser else 5.0),
            admm_lam=pick(self.admm_lam, None, 5e-5),
            admm_rho=pick(self.admm_rho, None, 1e-2),
            mbir_anchor=pick(self.mbir_anchor, 0.0, 0.02),
            prior_error=pick(
                self.prior_error, self.spec.consistency.auto_prior_error(denoiser), 0.0
            ),
            tv_share=self.tv_share or self.spec.consistency.tv_share,
            holdout=pick(self.holdout, 0.0, 0.25),
            discrepancy=1.0 if self.discrepancy is None else self.discrepancy,
            renoise=pick(self.renoise, 1.0, 0.0 if denoiser else 1.0),
            t_min=self.t_min if self.t_min is not None else (600 if denoiser else 20),
            slice_batch=self.slice_batch or (64 if device_type == "cuda" else 8),
            precision=resolve_precision(self.precision, device_type),
            preview_every=pick(self.preview_every, max(1, self.nfe // 8), max(1, self.nfe // 8)),
        )
        # Checked when this config was made, and the automatic values are in range: the copy
        # is not checked again (a setting passes its bounds check once).
        resolved = copy.copy(self)
        resolved.__dict__.update(values)
        return resolved

    def starts_at_aliasing(self, kind: str, denoiser: bool) -> bool:
        """Whether the automatic ``start_level`` follows the pseudo-inverse's aliasing
        (:data:`START_PER_ALIASING`): on MRI with a denoiser prior, for a method without
        adaptation that starts from the pseudo-inverse."""
        return (
            self.start_level is None
            and kind == "mri"
            and denoiser
            and self.init_pinv
            and not self.spec.adapts
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))


#: Every setting of :class:`ReconConfig` (all fields but the method and the seed).
ENGINE_SETTINGS: dict[str, Setting] = {
    f.name: f.metadata["setting"] for f in fields(ReconConfig) if "setting" in f.metadata
}
#: The range of every numeric setting of :class:`ReconConfig` (``None``: automatic, allowed).
SETTING_BOUNDS: dict[str, Bound] = {
    name: s.bound for name, s in ENGINE_SETTINGS.items() if s.bound is not None
}


def method_settings(method: DiffusionMethod) -> dict[str, Setting]:
    """The settings ``method`` takes: those of its groups, in :class:`ReconConfig`'s order."""
    return {name: s for name, s in ENGINE_SETTINGS.items() if s.group in method.groups}
