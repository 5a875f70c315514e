"""The reconstruction engine: every diffusion method on one DDS sampling loop
(docs/architecture.md §5–7).

Per sampling step ``t``: (adaptation of the LoRA, if the method adapts and ``t`` is inside the
horizon) → ``ε̂ = net(x_t, t)`` for all slices in batches → Tweedie ``x̂₀`` → data consistency
``x̃₀`` (at the step's noise level ``s_t``, which the noise-aware consistencies weigh against
the measurement's noise) → DDS update to the next timestep. The methods differ only in where
the LoRA state comes from and which data consistency they use:

- ``dds`` / ``ddnm`` / ``dps``: no LoRA; CG from ``x̂₀`` / CG null-space projection / no data
  consistency but the gradient of ``‖y − A x̂₀‖`` w.r.t. ``x_t``.
- ``d3ip``: one LoRA shared by the volume; each of ``L`` steps draws ``K`` random slices.
- ``d3ip-mbir``: as ``d3ip`` with ``K`` contiguous slices and ADMM-TV along z as consistency.
- ``dds-tv`` / ``d3ip-tv``: as ``dds`` / ``d3ip-mbir`` with ADMM-TV over all three axes.
- ``ddip``: one LoRA per slice, carried across timesteps (``L`` steps on its own slice).
- ``d3ip-meta``: pass 1 is ``d3ip`` with a Reptile step ``φ ← φ + ε(θ_L − φ)`` (``ε`` decaying
  linearly), recording ``φ_t``; pass 2 samples again where each slice fine-tunes from ``φ_t``.

With ``equivariant`` > 0 any method's run is followed by the equivariant self-supervision of
its prior (:class:`~napari_ddip.recon.equivariant.EquivariantRun`: rotated copies of the
result reconstructed by this loop, one fine-tuning, one stream of events).

Only the ``K`` slices of an adaptation step carry gradients, so adaptation memory does not grow
with the number of slices (D3IP); the volume goes through the network ``slice_batch`` slices
at a time.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import hashlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn.utils import parametrize

from napari_ddip.device import available_device
from napari_ddip.physics.operator import LinearOperator
from napari_ddip.precision import network_precision, pass_precision, tf32_switches
from napari_ddip.prior.denoiser import DenoiserPrior
from napari_ddip.prior.symmetry import ensemble_mean
from napari_ddip.prior.weights import Prior, load_prior
from napari_ddip.recon.adaptation import Adaptation, nearest_state
from napari_ddip.recon.config import START_PER_ALIASING, ReconConfig
from napari_ddip.recon.diffusion_methods import DIFFUSION_METHODS
from napari_ddip.recon.distributed import current_group
from napari_ddip.recon.estimate import UnitCosts, WorkClock, network_seconds, timed
from napari_ddip.recon.events import Adapted, Event, Finished, Preview, Started
from napari_ddip.recon.lora import LoRA, LoRAState, interpolate_states
from napari_ddip.recon.problem import Problem
from napari_ddip.recon.sampler import dds_update, initial_state

Cancel = threading.Event | Callable[[], bool] | None


def derive_seed(seed: int, *keys: object) -> int:
    """A 63-bit seed for the draw named by ``keys`` (stable across processes and platforms)."""
    digest = hashlib.blake2b(repr((seed, *keys)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") & (2**63 - 1)


EpsResult = tuple[torch.Tensor, torch.Tensor | None]


class Cancelled(Exception):
    """Raised inside a run when its cancel flag is set (turned into a partial result)."""


def is_cancelled(cancel: Cancel) -> bool:
    """Whether ``cancel`` (a ``threading.Event``, a callable or None) is set."""
    if cancel is None:
        return False
    return cancel.is_set() if isinstance(cancel, threading.Event) else bool(cancel())


def reconstruct(
    measurement: torch.Tensor | np.ndarray,
    operator: LinearOperator,
    config: ReconConfig | None = None,
    *,
    prior: Prior | str | Path | None = None,
    device: str | torch.device = "auto",
    slices: Sequence[int] | slice | None = None,
    cancel: Cancel = None,
    warm_start: Adaptation | None = None,
) -> Iterator[Event]:
    """Reconstruct ``measurement = A x`` with a diffusion method; yields typed events.

    Args:
        measurement: ``y`` of shape ``(Z, ...)`` for ``operator`` (sinogram ``(Z, V, D)``
            real, k-space ``(Z, [C,] ky, kx)`` complex), a NumPy array or a tensor of any
            numeric dtype and device (computed in float32 / complex64); it must be finite.
        operator: the forward model ``A``.
        config: settings (default :class:`ReconConfig`: D3IP with the paper's defaults).
        prior: a loaded prior, a shipped name or a path (default ``config.prior``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        slices: reconstruct only these slices (a quick preview).
        cancel: a ``threading.Event`` or a callable; once set/true the run stops within about
            one network call and finishes with ``partial=True``.
        warm_start: shared-LoRA states by timestep from an earlier run (``Finished.adaptation``
            or :func:`~napari_ddip.recon.adaptation.load_adaptation`) that D3IP starts each
            adaptation step from (nearest recorded timestep).

    Yields:
        :class:`Started`, then :class:`Progress` / :class:`Adapted` / :class:`Preview`, and
        last one :class:`Finished` with the volume ``(Z, Y, X)`` float32 (magnitude for MRI;
        with ``config.samples > 1`` the posterior mean, and the per-voxel std).
    """
    cfg = config or ReconConfig()
    if not (cancel is None or isinstance(cancel, threading.Event) or callable(cancel)):
        raise TypeError(f"cancel must be a threading.Event or a callable, got {cancel!r}")
    dev = available_device(device)
    y = _as_measurement(measurement, operator)
    if slices is not None:
        index = slices if isinstance(slices, slice) else torch.as_tensor(slices, dtype=torch.long)
        y, operator = y[index], operator.subset(index)
    if y.shape[0] == 0:
        raise ValueError("no slices to reconstruct")
    bad = int(y.numel() - torch.isfinite(y).sum())
    if bad:
        raise ValueError(f"the measurement contains {bad} NaN/Inf value(s)")

    op = operator.to(dev)
    in_memory = isinstance(prior, torch.nn.Module)
    base = prior if in_memory else load_prior(prior or cfg.prior)
    name = None if in_memory else str(prior or cfg.prior)

    def run_events(
        measured: torch.Tensor, forward: LinearOperator, settings: ReconConfig
    ) -> Iterator[Event]:
        return _Run(measured, forward, settings, base, name, dev, cancel, warm_start).events()

    def run() -> Iterator[Event]:
        if not cfg.equivariant:
            yield from run_events(y.to(dev), op, cfg)
            return
        from napari_ddip.recon.equivariant import EquivariantRun

        stop = functools.partial(is_cancelled, cancel)
        yield from EquivariantRun(y.to(dev), op, cfg, base, run_events, stop).events()

    yield from _with_autograd(run())


def _as_measurement(measurement: torch.Tensor | np.ndarray, op: LinearOperator) -> torch.Tensor:
    """``measurement`` as a tensor in ``op``'s dtype (complex64 for MRI, else float32), on its
    own device, once :meth:`~LinearOperator.check_measurement` accepts its shape."""
    if isinstance(measurement, np.ndarray):
        measurement = np.ascontiguousarray(measurement)  # torch refuses negative strides
    try:
        y = torch.as_tensor(measurement).detach()
    except (TypeError, ValueError, RuntimeError) as exc:
        raise ValueError(f"the measurement is not a numeric array ({exc})") from None
    if y.dtype == torch.bool:
        raise ValueError("the measurement must hold numbers, got bool")
    op.check_measurement(y)
    return y.to(torch.complex64 if op.is_complex else torch.float32)


def _with_autograd(events: Iterator[Event]) -> Iterator[Event]:
    """``events`` with every step of the run under autograd (adaptation and DPS need it,
    even when the caller iterates under ``torch.no_grad()`` or ``torch.inference_mode()``);
    the caller's mode holds again whenever an event is handed over."""
    try:
        while True:
            with torch.inference_mode(False), torch.enable_grad():
                event = next(events, None)
            if event is None:
                return
            yield event
    finally:
        events.close()


class _Run:
    """One reconstruction: the state shared by the sampling loop and the adaptation steps.

    Every random draw comes from its own generator, seeded by the run's seed and the draw's
    place in the run (sample, pass, step, batch…), so results do not depend on how the work is
    batched or ordered.
    """

    def __init__(
        self,
        y: torch.Tensor,
        op: LinearOperator,
        cfg: ReconConfig,
        base: Prior,
        prior_name: str | None,
        dev: torch.device,
        cancel: Cancel,
        warm_start: Adaptation | None,
    ) -> None:
        self.group = current_group()
        self.kind = "mri" if op.is_complex else "ct"
        denoiser = isinstance(base, DenoiserPrior)
        self.cfg = cfg.resolved(self.kind, dev.type, denoiser)
        self.spec = cfg.spec
        self.dev, self.cancel = dev, cancel
        self.prior_name = prior_name or "in-memory prior"
        self.prior = copy.deepcopy(base).to(dev).eval()
        self.schedule = self.prior.schedule
        self.problem = Problem(op, y, self.cfg)
        if self.cfg.starts_at_aliasing(self.kind, denoiser):
            # the first step at the zero-filled image's aliasing, with room for the nfe steps
            lowest = self.schedule.level(self.cfg.nfe - 1)
            level = max(START_PER_ALIASING * self.problem.pinv_noise, lowest)
            self.cfg = self.problem.cfg = dataclasses.replace(self.cfg, start_level=level)
        self.n = self.problem.n_slices
        self.lora = LoRA(self.prior.net, self.cfg.lora_rank) if self.spec.adapts else None
        #: A denoiser prior's adapted LoRA acts only inside the horizon; below it the base
        #: network denoises (architecture §6).
        self.base_below_horizon = denoiser
        self.timesteps = self.schedule.sampling_timesteps(
            self.cfg.nfe, self.cfg.timestep_power, self.cfg.start_level
        )
        self.warm = self._check_warm_start(warm_start)
        self.record: Adaptation = {}
        #: Whether the discrepancy stop can act: something adapts, and the noise is known and
        #: not zero (a noise-free simulated sinogram estimates exactly 0).
        self.stops_at_noise = bool(
            self.lora is not None
            and self.cfg.adapt_steps
            and self.cfg.discrepancy
            and self.problem.known_noise
        )
        #: The LoRAs whose adaptation the discrepancy principle ended: (sample, pass, slice
        #: of a per-slice LoRA or None for the shared one).
        self.explained: set[tuple[int | None, ...]] = set()
        self.shared_optimizer: torch.optim.Optimizer | None = None
        self.estimate = self.problem.pinv
        self.keys: tuple[int, ...] = (0, 0)  # (sample, pass)
        self.my_batches = self.group.share(self._batches())
        self.my_slices = [i for b in self.my_batches for i in range(b.start, b.stop)]
        self.costs = self._unit_costs(prior_name)
        units = self._units(False) + (self.cfg.samples - 1) * self._units(True)
        cost = self._cost(False) + (self.cfg.samples - 1) * self._cost(True)
        self.clock = WorkClock(units, cost, self.cfg.nfe)

    # -- bookkeeping ----------------------------------------------------------------------
    def _gen(self, *keys: object) -> torch.Generator:
        """A CPU generator for the draw named by ``keys`` within this sample and pass."""
        return torch.Generator().manual_seed(derive_seed(self.cfg.seed, *self.keys, *keys))

    def _in_horizon(self, t: int) -> bool:
        return self.cfg.t_min <= t <= self.cfg.t_max

    def _batches(self) -> list[slice]:
        b = self.cfg.slice_batch
        return [slice(s, min(s + b, self.n)) for s in range(0, self.n, b)]

    def _units(self, replay: bool) -> int:
        """This rank's work units of one posterior sample (``replay``: reusing the first
        sample's LoRA): network passes of a slice batch and adaptation steps."""
        return round(self._tally(replay, lambda n: 1.0, 1.0, 1.0, 1.0))

    def _cost(self, replay: bool) -> float:
        """Estimated seconds of this rank's work of one posterior sample (as :meth:`_units`)."""
        c, k = self.costs, min(self.cfg.k_slices, self.n)
        return self._tally(replay, c.sampling, c.sampling(1), c.adaptation(1), c.adaptation(k))

    def _tally(
        self,
        replay: bool,
        batch: Callable[[int], float],
        one_slice: float,
        adapt_one: float,
        adapt_k: float,
    ) -> float:
        """The work of one posterior sample, each unit weighed: ``batch(n)`` a sampling pass
        of a batch of ``n`` slices, ``one_slice`` that of one slice (per-slice methods),
        ``adapt_one`` / ``adapt_k`` an adaptation step on one slice / on ``K`` slices."""
        steps, l_steps = len(self.timesteps), self.cfg.adapt_steps
        adapted = sum(self._in_horizon(t) for t in self.timesteps)
        shared = steps * sum(batch(b.stop - b.start) for b in self.my_batches)
        mine = len(self.my_slices)
        per_slice = steps * mine * one_slice + adapted * mine * l_steps * adapt_one
        d3ip = shared + (0 if replay else adapted * l_steps * adapt_k)
        return {
            "none": shared,
            "shared": d3ip,
            "per-slice": per_slice,
            "reptile": per_slice + (0 if replay else d3ip),
        }[self.spec.adaptation]

    def _unit_costs(self, prior_key: str | None) -> UnitCosts:
        """Measured seconds of one network call on one slice (cached per ``prior_key``, ensemble,
        device, slice shape and precision; an in-memory prior, ``prior_key`` None, is timed
        by every run), of a sampling step's data consistency per slice, and of an adaptation
        step on one slice (cached likewise); no random draw of the run is touched."""
        p, cfg, dev = self.problem, self.cfg, self.dev
        x = torch.randn(p.to_prior(p.pinv[:1]).shape, generator=torch.Generator().manual_seed(0))
        x, t = x.to(dev), int(self.timesteps[len(self.timesteps) // 2])

        def call() -> None:
            with torch.no_grad(), parametrize.cached():
                self._eps(x, t, torch.Generator().manual_seed(0))

        key = (
            None
            if prior_key is None
            else (prior_key, str(dev), tuple(x.shape), cfg.precision, cfg.ensemble)
        )
        net = network_seconds(key, call, dev)
        consistency, level = self.spec.consistency, self.schedule.level(t)
        # on one batch (also a consistency that couples the slices: its cost grows with them)
        b = min(cfg.slice_batch, self.n)
        iters = cfg.admm_iters if consistency.couples_slices else 1
        with torch.no_grad():
            dc = timed(
                lambda: p.consistency(p.pinv[:b], slice(0, b), consistency.mode, iters, level),
                dev,
            )
        train = None
        if self.lora is not None:  # the loss of one adaptation step on one slice, and back
            weights = list(self.lora.parameters())
            volume = torch.randn(p.to_prior(p.pinv).shape, generator=torch.Generator())

            def train_call() -> None:
                loss, _, _ = self._adaptation_loss(volume.to(dev), t, slice(0, 1), ("time",), False)
                torch.autograd.grad(loss, weights)

            dc_key = (consistency.mode, cfg.cg_iters, cfg.admm_cg, cfg.ddnm_cg_iters)
            self.lora.train(True)
            try:
                train_key = None if key is None else (*key, *dc_key, "train")
                train = network_seconds(train_key, train_call, dev)
            finally:
                self.lora.train(False)
        return UnitCosts(net, dc / b, train, self.spec.guidance)

    def _check_cancel(self) -> None:
        if is_cancelled(self.cancel):
            raise Cancelled

    def _check_warm_start(self, warm: Adaptation | None) -> Adaptation | None:
        if warm is None:
            return None
        if not self.spec.can_warm_start:
            able = [m.name for m in DIFFUSION_METHODS.values() if m.can_warm_start]
            raise ValueError(f"warm start applies to {', '.join(able)}, not to {self.cfg.method}")
        if not warm:
            raise ValueError("the warm-start adaptation holds no states")
        assert self.lora is not None
        self.lora.check(next(iter(warm.values())))
        return warm

    def _volume(self, x: torch.Tensor) -> np.ndarray:
        """Images (prior units) → float32 NumPy volume in the measurement's units."""
        x = x.detach() * self.problem.scale
        return (x.abs() if x.is_complex() else x).float().cpu().numpy()

    # -- the run --------------------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        cfg = self.cfg
        estimate = round(self.clock.total_cost, 3)
        yield Started(
            cfg.method,
            self.n,
            self.clock.total,
            str(self.dev),
            cfg.to_dict(),
            estimate,
            upper_bound=self.stops_at_noise,
        )
        start = time.perf_counter()
        self.clock.restart()
        partial, stats = False, _Moments()
        self.previewed = False  # set by the run's first Preview
        try:
            for sample in range(cfg.samples):
                self.keys = (sample, 0)
                yield from self._one_sample(replay=sample > 0 and self.spec.shared_lora)
                stats.add(self.estimate.detach() * self.problem.scale)
        except Cancelled:
            partial = True
        if stats.count == 0:  # cancelled during the first sample: its current estimate
            stats.add(self.estimate.detach() * self.problem.scale)
        metadata: dict[str, Any] = {
            "method": cfg.method,
            "settings": cfg.to_dict(),
            "prior": self.prior_name,
            "prior_config": self.prior.config.to_dict(),
            "device": str(self.dev),
            "seed": cfg.seed,
            "n_slices": self.n,
            "scale": self.problem.scale,
            "seconds": round(time.perf_counter() - start, 3),
            "partial": partial,
            "samples": stats.count,
            "warm_start": self.warm is not None,
            "lora_parameters": self.lora.n_parameters() if self.lora else 0,
        }
        mean = stats.mean
        yield Finished(
            volume=(mean.abs() if mean.is_complex() else mean).float().cpu().numpy(),
            metadata=metadata,
            partial=partial,
            complex_volume=mean.to(torch.complex64).cpu().numpy() if mean.is_complex() else None,
            std=stats.std().float().cpu().numpy() if stats.count > 1 else None,
            adaptation=dict(self.record) or None,
        )

    def _one_sample(self, replay: bool) -> Iterator[Event]:
        """One posterior sample; ``replay`` reuses the shared LoRA states of the first."""
        if self.lora is not None:
            self.lora.reset(self._gen("lora"))
            self.shared_optimizer = None
        adaptation = self.spec.adaptation
        if adaptation == "reptile":
            yield from self._sample_meta(replay)
        elif adaptation == "per-slice":
            assert self.lora is not None
            states = []
            for i in range(self.n):
                self.lora.reset(self._gen("lora", i))
                states.append(self.lora.state())
            yield from self._sample(self._initial(), self._eps_per_slice(states, keep=True))
        elif adaptation == "shared":
            step = self._eps_replay if replay else self._eps_d3ip
            yield from self._sample(self._initial(), step)
        else:
            step = self._eps_dps if self.spec.guidance else self._eps_shared
            yield from self._sample(self._initial(), step)

    def _sample_meta(self, replay: bool) -> Iterator[Event]:
        """D3IP meta: pass 1 learns the meta-LoRA ``φ_t`` (skipped on ``replay``), pass 2
        fine-tunes each slice from it."""
        x_init = self._initial()
        if not replay:
            self.clock.phase = "meta-learning"
            yield from self._sample(x_init, self._eps_reptile)
        self.keys = (self.keys[0], 1)
        self.clock.phase = "fine-tuning"
        yield from self._sample(x_init, self._eps_per_slice(self._meta_state))

    def _initial(self) -> torch.Tensor:
        p = self.problem
        return initial_state(
            self.schedule,
            self.timesteps[0],
            p.to_prior(p.pinv),
            p.channels,
            self._gen("init"),
            self.cfg.init_pinv,
            self.cfg.slerp,
        )

    def _sample(
        self, x: torch.Tensor, step_eps: Callable[[torch.Tensor, int, int], Iterator[Event]]
    ) -> Iterator[Event]:
        """One pass of the sampler from ``x = x_T``; leaves ``x̃₀`` in ``self.estimate``."""
        cfg, p, ts = self.cfg, self.problem, self.timesteps
        consistency = self.spec.consistency
        mode = consistency.mode
        for j, t in enumerate(ts):
            eps, guidance = yield from step_eps(x, t, j)
            level = self.schedule.level(t)
            with torch.no_grad():
                x0 = p.from_prior(self.schedule.tweedie(x, eps, t))
                if consistency.couples_slices:  # e.g. z-TV: every rank solves the volume
                    x0 = p.consistency(x0, slice(None), mode, cfg.admm_iters, level)
                else:
                    consistent = torch.zeros_like(x0)
                    for b in self.my_batches:
                        consistent[b] = p.consistency(x0[b], b, mode, 1, level)
                    x0 = self.group.sum_(consistent)
                self.estimate = x0
                if j + 1 < len(ts):
                    gen = self._gen("step", j)
                    x = dds_update(
                        self.schedule, p.to_prior(x0), eps, ts[j + 1], cfg.eta, gen, cfg.renoise
                    )
                    if guidance is not None:
                        # ∇‖y − A x̂₀‖ carries ‖A‖: divide it out so ζ is unit-free.
                        x = x - cfg.dps_step / self.problem.norm**0.5 * guidance
            last = j + 1 == len(ts)
            if cfg.preview_every and (last or (j + 1) % cfg.preview_every == 0):
                self.previewed = True
                yield Preview(t, tuple(range(self.n)), self._volume(x0))

    # -- network passes -------------------------------------------------------------------
    def _eps(self, x: torch.Tensor, t: int, generator: torch.Generator) -> torch.Tensor:
        """``ε̂`` (float32) of prior-space slices ``x`` at ``t`` in the run's precision
        (:func:`pass_precision`: ``bf16`` only at noise levels where bfloat16 resolves the
        image), averaged over ``ensemble`` symmetries of the slices (:func:`ensemble_mean`)."""

        def eps(v: torch.Tensor) -> torch.Tensor:
            return self.prior.eps(v, t, generator).float()

        precision = pass_precision(self.cfg.precision, self.prior.schedule.level(t))
        with network_precision(precision, self.dev):
            return ensemble_mean(eps, x, self.cfg.ensemble)

    def _sampling_eps(self, x: torch.Tensor, t: int, generator: torch.Generator) -> torch.Tensor:
        """:meth:`_eps` of a sampling step: by the base network below the horizon where
        :attr:`base_below_horizon`."""
        if self.lora is None or not self.base_below_horizon or self._in_horizon(t):
            return self._eps(x, t, generator)
        with self.lora.bypassed():
            return self._eps(x, t, generator)

    def _eps_shared(self, x: torch.Tensor, t: int, j: int) -> Iterator[Event]:
        """``ε̂`` of every slice with the current weights, ``slice_batch`` slices per call."""
        eps = torch.zeros_like(x)
        for b in self.my_batches:
            self._check_cancel()
            rows = self.problem.rows(b)
            # Not across the yield: grad mode and the cache would hold in the caller's code.
            with torch.no_grad(), parametrize.cached():
                eps[rows] = self._sampling_eps(x[rows], t, self._gen("eps", j, b.start))
            yield self.clock.advance(self.costs.sampling(b.stop - b.start), j)
        return self.group.sum_(eps), None

    def _eps_dps(self, x: torch.Tensor, t: int, j: int) -> Iterator[Event]:
        """``ε̂`` and DPS's ``∇_{x_t} Σ_z ‖y_z − A x̂₀_z‖`` slice batch by slice batch."""
        p = self.problem
        eps, guidance = torch.zeros_like(x), torch.zeros_like(x)
        for b in self.my_batches:
            self._check_cancel()
            rows = p.rows(b)
            xb = x[rows].detach().requires_grad_(True)
            e = self._sampling_eps(xb, t, self._gen("eps", j, b.start))
            x0 = p.from_prior(self.schedule.tweedie(xb, e, t))
            residual = p.op.subset(b).forward(x0) - p.y[b]
            norms = residual.abs().pow(2).reshape(residual.shape[0], -1).sum(1).sqrt()
            (grad,) = torch.autograd.grad(norms.sum(), xb)
            eps[rows], guidance[rows] = e.detach(), grad
            yield self.clock.advance(self.costs.sampling(b.stop - b.start), j)
        return self.group.sum_(eps), self.group.sum_(guidance)

    def _eps_d3ip(self, x: torch.Tensor, t: int, j: int) -> Iterator[Event]:
        """D3IP: adapt the shared LoRA (from the warm start's state at ``t`` if given) on ``K``
        slices per step, record its state, then ``ε̂`` of the volume."""
        if self._in_horizon(t):
            assert self.lora is not None
            if self.warm is not None:
                self.lora.load(nearest_state(self.warm, t))
            yield from self._adapt(x, t, j)
            self.record[t] = self.lora.state()
        return (yield from self._eps_shared(x, t, j))

    def _eps_replay(self, x: torch.Tensor, t: int, j: int) -> Iterator[Event]:
        """A further posterior sample: the first sample's shared LoRA state at ``t``."""
        if t in self.record:
            assert self.lora is not None
            self.lora.load(self.record[t])
        return (yield from self._eps_shared(x, t, j))

    def _eps_reptile(self, x: torch.Tensor, t: int, j: int) -> Iterator[Event]:
        """D3IP-meta pass 1: Reptile ``φ ← φ + ε(θ_L − φ)`` on the shared LoRA, ``ε`` decaying
        linearly over the horizon; ``φ_t`` is recorded for pass 2."""
        assert self.lora is not None
        lora, cfg = self.lora, self.cfg
        if self._in_horizon(t):
            horizon = [s for s in self.timesteps if self._in_horizon(s)]
            frac = horizon.index(t) / max(len(horizon) - 1, 1)
            step = cfg.meta_step_start + frac * (cfg.meta_step_end - cfg.meta_step_start)
            phi = nearest_state(self.warm, t) if self.warm is not None else lora.state()
            lora.load(phi)
            yield from self._adapt(x, t, j)
            lora.load(interpolate_states(phi, lora.state(), step))
        self.record[t] = lora.state()
        return (yield from self._eps_shared(x, t, j))

    def _meta_state(self, i: int, t: int) -> LoRAState:
        """D3IP-meta pass 2: every slice starts from ``φ_t``."""
        return self.record[t]

    def _eps_per_slice(
        self,
        states: list[LoRAState] | Callable[[int, int], LoRAState],
        keep: bool = False,
    ):
        """DDIP-style steps: each slice loads its LoRA (``states[i]``, or ``states(i, t)``),
        adapts on itself, and gives its own ``ε̂``; ``keep`` stores the adapted state back
        (carried across timesteps)."""
        assert self.lora is not None
        lora, p = self.lora, self.problem

        def step(x: torch.Tensor, t: int, j: int) -> Iterator[Event]:
            eps = torch.zeros_like(x)
            losses = []
            for i in self.my_slices:
                lora.load(states(i, t) if callable(states) else states[i])
                if self._in_horizon(t):
                    loss = yield from self._adapt(x, t, j, slice(i, i + 1), report=False)
                    if loss is not None:
                        losses.append(loss)
                    if keep:
                        assert isinstance(states, list)
                        states[i] = lora.state()
                self._check_cancel()
                rows = p.rows(slice(i, i + 1))
                with torch.no_grad(), parametrize.cached():
                    eps[rows] = self._sampling_eps(x[rows], t, self._gen("eps", j, i))
                yield self.clock.advance(self.costs.sampling(1), j)
            if losses:
                yield Adapted(t, float(np.mean(losses)), tuple(self.my_slices), tuple(losses))
            return self.group.sum_(eps), None

        return step

    # -- adaptation -----------------------------------------------------------------------
    def _choose_slices(self, rng: np.random.Generator) -> slice | torch.Tensor:
        """``K`` slices: contiguous where the consistency couples slices (z-TV needs
        neighbours), else random."""
        k = min(self.cfg.k_slices, self.n)
        if self.spec.consistency.couples_slices:
            start = int(rng.integers(0, self.n - k + 1))
            return slice(start, start + k)
        return torch.as_tensor(np.sort(rng.choice(self.n, size=k, replace=False)))

    def _adapt(
        self,
        x: torch.Tensor,
        t: int,
        j: int,
        fixed: slice | None = None,
        report: bool = True,
    ) -> Iterator[Event]:
        """``L`` AdamW steps (a fresh optimiser, or the run's shared one with
        ``keep_optimizer``) of the LoRA on ``‖y − A·DC(x̂₀(θ))‖² / ‖y‖²`` (with ``holdout``:
        on the held-out entries of a DC from the rest)
        over ``fixed`` slices (this rank's own LoRA) or over ``K`` slices drawn per step for
        the shared LoRA (split over the ranks, gradients summed); returns the mean loss (None
        if L = 0 or the LoRA's adaptation has ended). The first step whose loss the
        measurement noise explains (:meth:`_explains_noise`) ends this LoRA's adaptation for
        the rest of the run, before its update, and its work leaves the progress count."""
        assert self.lora is not None
        cfg = self.cfg
        shared = fixed is None
        lora_key = (*self.keys, None if shared else fixed.start)
        if cfg.adapt_steps == 0 or lora_key in self.explained:
            return None
        self.lora.train(True)
        opt = self._optimizer(carry=shared and cfg.keep_optimizer)
        losses, chosen = [], fixed
        k = min(cfg.k_slices, self.n) if shared else 1
        try:
            for step in range(cfg.adapt_steps):
                self._check_cancel()
                keys = ("adapt", j, step, -1 if fixed is None else fixed.start)
                if shared:
                    seed = int(torch.randint(2**62, (1,), generator=self._gen(*keys)))
                    chosen = self._choose_slices(np.random.default_rng(seed))
                loss, mine, estimate = self._adaptation_loss(x, t, chosen, keys, shared)
                value = self.group.sum_(loss.detach().clone()) if shared else loss.detach()
                losses.append(value)
                if self._explains_noise(float(value), chosen):
                    self.explained.add(lora_key)
                    later = sum(self._in_horizon(s) for s in self.timesteps[j + 1 :])
                    units = cfg.adapt_steps - step + later * cfg.adapt_steps
                    self.clock.drop(units, units * self.costs.adaptation(k))
                    break
                opt.zero_grad(set_to_none=True)
                with tf32_switches(cfg.precision, self.dev):
                    loss.backward()
                if shared and self.group.world > 1:
                    for param in self.lora.parameters():
                        if param.grad is None:
                            param.grad = torch.zeros_like(param)
                        self.group.sum_(param.grad)
                opt.step()
                yield self.clock.advance(self.costs.adaptation(k), j, (step + 1, cfg.adapt_steps))
                if not self.previewed and cfg.preview_every and mine:
                    # The run's first look comes here, not after the first step's L
                    # adaptation steps (a quarter or more of a D3IP run at small NFE).
                    self.previewed = True
                    yield Preview(t, mine, self._volume(estimate))
        finally:
            self.lora.train(False)
        values = torch.stack(losses).tolist()
        mean = float(np.mean(values))
        if report:
            ended = lora_key in self.explained  # only this call can have put it there
            yield Adapted(t, mean, _slice_tuple(chosen, self.n), tuple(values), ended)
        return mean

    def _explains_noise(self, loss: float, chosen: slice | torch.Tensor | None) -> bool:
        """Whether an adaptation loss over slices ``chosen`` is down to ``discrepancy`` times
        the measurement noise's share of it (Morozov's discrepancy principle): a lower loss
        would fit noise (never where :attr:`stops_at_noise` is false)."""
        assert chosen is not None
        if not self.stops_at_noise:
            return False
        floor = self.problem.noise_share(chosen, self.cfg.holdout > 0)
        return floor is not None and loss <= self.cfg.discrepancy * floor

    def _optimizer(self, carry: bool) -> torch.optim.Optimizer:
        """AdamW over the LoRA: the run's shared one if ``carry`` (created on first use), else
        a fresh one."""
        assert self.lora is not None
        if carry and self.shared_optimizer is not None:
            return self.shared_optimizer
        # foreach: one kernel per operation over the 180 small LoRA tensors instead of a
        # Python loop over them (the CPU default); 15 → 4 ms per step here, same numbers.
        opt = torch.optim.AdamW(
            self.lora.parameters(), lr=self.cfg.lr, weight_decay=0.0, foreach=True
        )
        if carry:
            self.shared_optimizer = opt
        return opt

    def _adaptation_loss(
        self,
        x: torch.Tensor,
        t: int,
        chosen: slice | torch.Tensor,
        keys: tuple[object, ...],
        shared: bool,
    ) -> tuple[torch.Tensor, tuple[int, ...], torch.Tensor | None]:
        """This rank's part of ``Σ_chosen ‖A x̃₀ − y‖² / Σ_chosen ‖y‖²`` with gradients, the
        slices this rank computed and their ``x̃₀`` (detached; None where it has none).

        Each slice's network call draws from its own keyed generator, so the loss does not
        depend on how the slices are split over ranks. mbir's z-TV couples its contiguous
        block, which rank 0 computes whole.
        """
        p, held_out = self.problem, self.cfg.holdout > 0
        denominator = p.measured(chosen, held_out).abs().pow(2).sum()
        if isinstance(chosen, slice):  # mbir block, or one slice of DDIP
            mine = (
                list(range(*chosen.indices(self.n))) if self.group.rank == 0 or not shared else []
            )
        else:
            mine = chosen.tolist()[self.group.rank :: self.group.world]
        if not mine:  # no slices here
            return sum(q.sum() for q in self.lora.parameters()) * 0.0, (), None
        eps = torch.cat(
            [self._eps(x[p.rows(slice(i, i + 1))], t, self._gen(*keys, i)) for i in mine]
        )
        rows = p.rows(torch.as_tensor(mine))
        x0 = p.from_prior(self.schedule.tweedie(x[rows], eps, t))
        index = chosen if isinstance(chosen, slice) else torch.as_tensor(mine)
        mode, level = self.spec.consistency.mode, self.schedule.level(t)
        x_dc = p.consistency(x0, index, mode, 1, level, fitted=held_out)
        loss = p.relative_loss(x_dc, index, denominator, scored=held_out)
        return loss, tuple(mine), x_dc.detach()


class _Moments:
    """Running mean and variance (Welford) of volumes; the variance is of the magnitude."""

    def __init__(self) -> None:
        self.count = 0
        self.mean = torch.zeros(())
        self.magnitude_mean = torch.zeros(())
        self.m2 = torch.zeros(())

    def add(self, x: torch.Tensor) -> None:
        self.count += 1
        magnitude = x.abs() if x.is_complex() else x
        self.mean = self.mean + (x - self.mean) / self.count
        delta = magnitude - self.magnitude_mean
        self.magnitude_mean = self.magnitude_mean + delta / self.count
        self.m2 = self.m2 + delta * (magnitude - self.magnitude_mean)

    def std(self) -> torch.Tensor:
        """Sample standard deviation (``count − 1`` in the denominator)."""
        return (self.m2 / max(self.count - 1, 1)).sqrt()


def _slice_tuple(chosen: slice | torch.Tensor | None, n: int) -> tuple[int, ...]:
    if chosen is None:
        return ()
    if isinstance(chosen, slice):
        return tuple(range(*chosen.indices(n)))
    return tuple(int(i) for i in chosen)


def run_to_end(
    events: Iterator[Event], on_event: Callable[[Event], None] | None = None
) -> Finished:
    """Consume a run's events (passing each to ``on_event``) and return its :class:`Finished`."""
    finished = None
    for event in events:
        if on_event is not None:
            on_event(event)
        if isinstance(event, Finished):
            finished = event
    if finished is None:
        raise RuntimeError("the run ended without a Finished event")
    return finished
