"""One record per diffusion method: what it is made of, read by the engine, the registry
(:mod:`napari_ddip.methods`), the command line and the Reconstruct widget.

Every diffusion method runs the same DDS sampling loop (:mod:`napari_ddip.recon.engine`); a
method is the choice of

- a data consistency ``x̂₀ ↦ x̃₀`` (:class:`Consistency`, computed by
  :meth:`napari_ddip.recon.problem.Problem.consistency`),
- an adaptation of the prior by LoRA (none, one LoRA shared by the volume, one per slice, or
  a Reptile meta-LoRA followed by per-slice fine-tuning),
- optionally DPS guidance, the gradient of ``‖y − A x̂₀‖`` through the network.

The settings a method takes follow from these choices: each setting of
:class:`~napari_ddip.recon.config.ReconConfig` names the *group* it belongs to (e.g.
``lora_rank`` → :data:`ADAPTATION`), and :attr:`DiffusionMethod.groups` lists the groups of a
method. A new method is one :class:`DiffusionMethod` in :data:`DIFFUSION_METHODS`; a new data
consistency is one :class:`Consistency` (and its case in ``Problem.consistency``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Setting groups (see :attr:`DiffusionMethod.groups`).
SAMPLING = "sampling"  # every diffusion method: the sampler, prior, batching, precision
ADAPTATION = "adaptation"  # every method that adapts a LoRA
SHARED_LORA = "shared LoRA"  # a LoRA shared by the volume (K slices per step, warm start)
REPTILE = "Reptile"  # the meta-learning pass of D3IP meta
GUIDANCE = "guidance"  # DPS's gradient step
NOISE_AWARE = "noise-aware"  # a proximal consistency weighted by the measurement's noise

#: Kinds of adaptation: none; one LoRA for the volume; one LoRA per slice; a shared Reptile
#: meta-LoRA, then per-slice fine-tuning from it.
ADAPTATIONS = ("none", "shared", "per-slice", "reptile")


@dataclass(frozen=True)
class Consistency:
    """A data consistency ``x̂₀ ↦ x̃₀``.

    Attributes:
        mode: its name in :meth:`~napari_ddip.recon.problem.Problem.consistency`.
        groups: the setting groups it reads (settings whose group is one of these).
        couples_slices: it couples neighbouring slices (TV along z), so the sampler solves it
            on the whole volume at once and an adaptation step draws contiguous slices.
        prior_error: the automatic ``ζ`` of its noise-aware weight on CT with a denoiser
            prior (``ReconConfig.prior_error``; MRI: off).
        prior_error_diffusion: the same with a diffusion prior (None: ``prior_error``).
            A denoiser prior denoises each slice at the level it estimates from it, so
            what the consistency lets through is removed at the next step and the
            consistency can trust the prior less; a diffusion prior takes the schedule's
            level alone. CG on the held-out slab, 20 steps: the ellipse prior's DDS 33.64 dB
            at ζ 2 against 33.48 / 33.36 / 33.19 / 33.14 at 1 / 4 / 8 / 16, its D3IP 33.70
            against 33.25 at 8; FFDNet with its level estimate, 50 steps, 36.21 at ζ 8
            against 35.65 at 2.
        tv_share: the automatic ``ReconConfig.tv_share`` of a TV consistency on CT, its TV
            weight as a share of ADMM-TV's own.

    With 3D TV in the consistency the prior's estimate is trusted less at the last steps and
    TV weighs half of ADMM-TV alone, so that each does part of the denoising: on the held-out
    slab DDS + 3D TV gives 36.80 dB at ζ 8 and share 0.5, 36.39 at ζ 8 and share 1, 35.95
    at ζ 2 and share 1 (ADMM-TV 36.65); with the denoiser prior's level estimate 36.90.
    DDS with CG, with that estimate, at 50 steps: 36.21 dB at ζ 8, 36.10 at ζ 4, 35.65 at
    ζ 2 (the schedule's level alone: best at ζ 2). D3IP mbir (TV along z only) at ζ 2 and
    share 1 (36.07 dB; 35.79 at ζ 8, 35.67 at ζ 8 and share 0.5); BENCHMARKS "Quality on
    real anatomy". On ×8 MRI each TV consistency is a weak TV beside a nearly hard data
    consistency (``ReconConfig.admm_lam``, ``mbir_anchor``).
    """

    mode: str
    groups: tuple[str, ...] = ()
    couples_slices: bool = False
    prior_error: float = 0.0
    prior_error_diffusion: float | None = None
    tv_share: float = 1.0

    def auto_prior_error(self, denoiser: bool) -> float:
        """The automatic ``ζ`` on CT for a denoiser prior or a diffusion prior."""
        if denoiser or self.prior_error_diffusion is None:
            return self.prior_error
        return self.prior_error_diffusion


CG = Consistency("cg", ("cg", NOISE_AWARE), prior_error=8.0, prior_error_diffusion=2.0)
PROJECT = Consistency("project", ("project",))
NONE = Consistency("none")
MBIR = Consistency("mbir", ("mbir", NOISE_AWARE), couples_slices=True, prior_error=2.0)
#: ADMM-TV over all three axes: the prior and 3D TV together (same settings as mbir's).
TV = Consistency("tv", ("mbir", NOISE_AWARE), couples_slices=True, prior_error=8.0, tv_share=0.5)


@dataclass(frozen=True)
class DiffusionMethod:
    """One diffusion method.

    Attributes:
        name: what the user chooses (``--method NAME``).
        summary: one line for ``--help`` and the widget.
        consistency: its data consistency (also inside the adaptation loss).
        adaptation: one of :data:`ADAPTATIONS`.
        guidance: DPS guidance: the gradient of ``Σ_z ‖y_z − A x̂₀_z‖`` w.r.t. ``x_t``.
    """

    name: str
    summary: str
    consistency: Consistency
    adaptation: str = "none"
    guidance: bool = False

    def __post_init__(self) -> None:
        if self.adaptation not in ADAPTATIONS:
            raise ValueError(f"adaptation {self.adaptation!r} is not one of {ADAPTATIONS}")

    @property
    def adapts(self) -> bool:
        """Whether it adapts a LoRA on the measurement."""
        return self.adaptation != "none"

    @property
    def shared_lora(self) -> bool:
        """Whether one LoRA serves the volume at each timestep: its states can be saved,
        warm-started from, and reused for further posterior samples."""
        return self.adaptation in ("shared", "reptile")

    @property
    def can_save_adaptation(self) -> bool:
        return self.shared_lora

    @property
    def can_warm_start(self) -> bool:
        return self.shared_lora

    @property
    def groups(self) -> frozenset[str]:
        """The setting groups it takes."""
        groups = {SAMPLING, *self.consistency.groups}
        if self.guidance:
            groups.add(GUIDANCE)
        if self.adapts:
            groups.add(ADAPTATION)
        if self.shared_lora:
            groups.add(SHARED_LORA)
        if self.adaptation == "reptile":
            groups.add(REPTILE)
        return frozenset(groups)


#: Every diffusion method by name (the order of ``--help`` and the widget).
DIFFUSION_METHODS: dict[str, DiffusionMethod] = {
    m.name: m
    for m in (
        DiffusionMethod("dds", "DDS: prior + CG data consistency, no adaptation", CG),
        DiffusionMethod(
            "dps", "DPS: gradient of the measurement loss through the network", NONE, "none", True
        ),
        DiffusionMethod("ddnm", "DDNM: null-space projection by CG, no adaptation", PROJECT),
        DiffusionMethod("ddip", "DDIP: its own LoRA per slice (SCD generalised)", CG, "per-slice"),
        DiffusionMethod(
            "d3ip", "D3IP base: one LoRA for the volume, K random slices per step", CG, "shared"
        ),
        DiffusionMethod(
            "d3ip-mbir",
            "D3IP mbir: ADMM-TV along z in data consistency, K contiguous slices",
            MBIR,
            "shared",
        ),
        DiffusionMethod(
            "dds-tv", "DDS with 3D ADMM-TV in the data consistency: prior and TV together", TV
        ),
        DiffusionMethod(
            "d3ip-tv",
            "D3IP with 3D ADMM-TV in the data consistency, K contiguous slices",
            TV,
            "shared",
        ),
        DiffusionMethod(
            "d3ip-meta",
            "D3IP meta: Reptile meta-LoRA, then per-slice fine-tuning",
            CG,
            "reptile",
        ),
    )
}


def diffusion_method(name: str) -> DiffusionMethod:
    """The record of the diffusion method ``name`` (``ValueError`` naming the methods)."""
    if name not in DIFFUSION_METHODS:
        known = ", ".join(DIFFUSION_METHODS)
        raise ValueError(f"unknown diffusion method {name!r} (methods: {known})")
    return DIFFUSION_METHODS[name]
