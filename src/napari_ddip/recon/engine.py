"""The reconstruction engine: every diffusion method on one DDS sampling loop (DESIGN §6–7).

Per sampling step ``t``: (adaptation of the LoRA, if the method adapts and ``t`` is inside the
horizon) → ``ε̂ = net(x_t, t)`` for all slices in batches → Tweedie ``x̂₀`` → data consistency
``x̃₀`` → DDS update to the next timestep. The methods differ only in where the LoRA state comes
from and which data consistency they use:

- ``dds`` / ``ddnm`` / ``dps``: no LoRA; CG from ``x̂₀`` / CG null-space projection / no data
  consistency but the gradient of ``‖y − A x̂₀‖`` w.r.t. ``x_t``.
- ``d3ip``: one LoRA shared by the volume; each of ``L`` steps draws ``K`` random slices.
- ``d3ip-mbir``: as ``d3ip`` with ``K`` contiguous slices and ADMM-TV along z as consistency.
- ``ddip``: one LoRA per slice, carried across timesteps (``L`` steps on its own slice).
- ``d3ip-meta``: pass 1 is ``d3ip`` with a Reptile step ``φ ← φ + ε(θ_L − φ)`` (``ε`` decaying
  linearly), recording ``φ_t``; pass 2 samples again where each slice fine-tunes from ``φ_t``.

Only the ``K`` slices of an adaptation step carry gradients, so adaptation memory does not grow
with the number of slices (D3IP); the volume goes through the network ``slice_batch`` slices
at a time.
"""

from __future__ import annotations

import copy
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.nn.utils import parametrize

from napari_ddip import __version__
from napari_ddip.physics.operator import LinearOperator
from napari_ddip.prior.model import DiffusionPrior
from napari_ddip.prior.weights import load_prior
from napari_ddip.recon.config import ReconConfig
from napari_ddip.recon.events import Adapted, Event, Finished, Preview, Progress, Started
from napari_ddip.recon.lora import LoRA, LoRAState, interpolate_states
from napari_ddip.recon.problem import Problem
from napari_ddip.recon.sampler import dds_update, initial_state

Cancel = threading.Event | Callable[[], bool] | None
CONSISTENCY = {"dds": "cg", "ddnm": "project", "dps": "none", "d3ip-mbir": "mbir"}
EpsResult = tuple[torch.Tensor, torch.Tensor | None]


class Cancelled(Exception):
    """Raised inside a run when its cancel flag is set (turned into a partial result)."""


def resolve_device(device: str | torch.device) -> torch.device:
    """``"auto"`` → the first CUDA device if there is one, else the CPU."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def reconstruct(
    measurement: torch.Tensor | np.ndarray,
    operator: LinearOperator,
    config: ReconConfig | None = None,
    *,
    prior: DiffusionPrior | str | None = None,
    device: str | torch.device = "auto",
    slices: Sequence[int] | slice | None = None,
    cancel: Cancel = None,
) -> Iterator[Event]:
    """Reconstruct ``measurement = A x`` with a diffusion method; yields typed events.

    Args:
        measurement: ``y`` of shape ``(Z, ...)`` for ``operator`` (sinogram ``(Z, V, D)``
            float32, k-space ``(Z, [C,] ky, kx)`` complex64).
        operator: the forward model ``A``.
        config: settings (default :class:`ReconConfig`: D3IP with the paper's defaults).
        prior: a loaded prior, a shipped name or a path (default ``config.prior``).
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        slices: reconstruct only these slices (a quick preview).
        cancel: a ``threading.Event`` or a callable; once set/true the run stops within about
            one network call and finishes with ``partial=True``.

    Yields:
        :class:`Started`, then :class:`Progress` / :class:`Adapted` / :class:`Preview`, and
        last one :class:`Finished` with the volume ``(Z, Y, X)`` float32 (magnitude for MRI).
    """
    cfg = config or ReconConfig()
    dev = resolve_device(device)
    y = torch.as_tensor(measurement)
    if slices is not None:
        index = slices if isinstance(slices, slice) else torch.as_tensor(slices, dtype=torch.long)
        y, operator = y[index], operator.subset(index)
    if y.shape[0] == 0:
        raise ValueError("no slices to reconstruct")
    run = _Run(y.to(dev), operator.to(dev), cfg, prior, dev, cancel)
    yield from run.events()


class _Clock:
    """Counts work units (network passes and adaptation steps) and estimates the time left."""

    def __init__(self, total: int) -> None:
        self.total, self.done, self.start = total, 0, time.perf_counter()
        self.phase = "sampling"

    def advance(self, n: int = 1) -> Progress:
        self.done += n
        elapsed = time.perf_counter() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else None
        return Progress(self.done, self.total, elapsed, eta, self.phase)


class _Run:
    """One reconstruction: the state shared by the sampling loop and the adaptation steps."""

    def __init__(
        self,
        y: torch.Tensor,
        op: LinearOperator,
        cfg: ReconConfig,
        prior: DiffusionPrior | str | None,
        dev: torch.device,
        cancel: Cancel,
    ) -> None:
        self.kind = "mri" if op.is_complex else "ct"
        self.cfg = cfg.resolved(self.kind, dev.type)
        self.dev, self.cancel = dev, cancel
        base = prior if isinstance(prior, DiffusionPrior) else load_prior(prior or cfg.prior)
        self.prior_name = (
            cfg.prior if prior is None else prior if isinstance(prior, str) else "in-memory prior"
        )
        self.prior = copy.deepcopy(base).to(dev).eval()
        self.schedule = self.prior.schedule
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        self.problem = Problem(op, y, self.cfg)
        self.n = self.problem.n_slices
        self.lora = LoRA(self.prior.net, self.cfg.lora_rank, self.gen) if self.cfg.adapts else None
        self.timesteps = self.schedule.sampling_timesteps(self.cfg.nfe)
        self.estimate = self.problem.pinv
        self.clock = _Clock(self._total_units())

    # -- bookkeeping ----------------------------------------------------------------------
    def _in_horizon(self, t: int) -> bool:
        return self.cfg.t_min <= t <= self.cfg.t_max

    def _batches(self) -> list[slice]:
        b = self.cfg.slice_batch
        return [slice(s, min(s + b, self.n)) for s in range(0, self.n, b)]

    def _total_units(self) -> int:
        adapted = sum(self._in_horizon(t) for t in self.timesteps)
        shared = len(self.timesteps) * len(self._batches())
        per_slice = len(self.timesteps) * self.n + adapted * self.n * self.cfg.adapt_steps
        method = self.cfg.method
        if method == "ddip":
            return per_slice
        d3ip = shared + adapted * self.cfg.adapt_steps
        if method == "d3ip-meta":
            return d3ip + per_slice
        return d3ip if method in ("d3ip", "d3ip-mbir") else shared

    def _check_cancel(self) -> None:
        c = self.cancel
        if c is not None and (c.is_set() if isinstance(c, threading.Event) else c()):
            raise Cancelled

    def _volume(self, x: torch.Tensor) -> np.ndarray:
        """Images (prior units) → float32 NumPy volume in the measurement's units."""
        x = x.detach() * self.problem.scale
        return (x.abs() if x.is_complex() else x).float().cpu().numpy()

    # -- the run --------------------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        cfg = self.cfg
        yield Started(cfg.method, self.n, self.clock.total, str(self.dev), cfg.to_dict())
        start = time.perf_counter()
        partial = False
        try:
            if cfg.method == "d3ip-meta":
                self.clock.phase = "meta-learning"
                x_init = self._initial()
                meta_states: list[LoRAState] = []
                yield from self._sample(x_init, self._eps_reptile(meta_states))
                self.clock.phase = "fine-tuning"
                yield from self._sample(x_init, self._eps_per_slice(lambda i, j: meta_states[j]))
            elif cfg.method == "ddip":
                assert self.lora is not None
                states = []
                for _ in range(self.n):
                    self.lora.reset(self.gen)
                    states.append(self.lora.state())
                yield from self._sample(self._initial(), self._eps_per_slice(states, keep=True))
            elif cfg.method in ("d3ip", "d3ip-mbir"):
                yield from self._sample(self._initial(), self._eps_d3ip)
            elif cfg.method == "dps":
                yield from self._sample(self._initial(), self._eps_dps)
            else:
                yield from self._sample(self._initial(), self._eps_shared)
        except Cancelled:
            partial = True
        x = self.estimate.detach()
        metadata: dict[str, Any] = {
            "software": "napari-ddip",
            "version": __version__,
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
            "lora_parameters": self.lora.n_parameters() if self.lora else 0,
        }
        complex_volume = None
        if x.is_complex():
            complex_volume = (x * self.problem.scale).to(torch.complex64).cpu().numpy()
        yield Finished(self._volume(x), metadata, partial, complex_volume)

    def _initial(self) -> torch.Tensor:
        p = self.problem
        return initial_state(
            self.schedule,
            self.timesteps[0],
            p.to_prior(p.pinv),
            p.channels,
            self.gen,
            self.cfg.init_pinv,
            self.cfg.slerp,
        )

    def _sample(
        self, x: torch.Tensor, step_eps: Callable[[torch.Tensor, int, int], Iterator[Event]]
    ) -> Iterator[Event]:
        """One pass of the sampler from ``x = x_T``; leaves ``x̃₀`` in ``self.estimate``."""
        cfg, p, ts = self.cfg, self.problem, self.timesteps
        mode = CONSISTENCY.get(cfg.method, "cg")
        for j, t in enumerate(ts):
            eps, guidance = yield from step_eps(x, t, j)
            with torch.no_grad():
                x0 = p.from_prior(self.schedule.tweedie(x, eps, t))
                if mode == "mbir":
                    x0 = p.consistency(x0, slice(None), mode, cfg.admm_iters)
                else:
                    x0 = torch.cat([p.consistency(x0[b], b, mode, 1) for b in self._batches()])
                self.estimate = x0
                if j + 1 < len(ts):
                    x = dds_update(self.schedule, p.to_prior(x0), eps, ts[j + 1], cfg.eta, self.gen)
                    if guidance is not None:
                        x = x - cfg.dps_step * guidance
            last = j + 1 == len(ts)
            if cfg.preview_every and (last or (j + 1) % cfg.preview_every == 0):
                yield Preview(t, tuple(range(self.n)), self._volume(x0))

    # -- network passes -------------------------------------------------------------------
    def _eps_shared(self, x: torch.Tensor, t: int, j: int) -> Iterator[Event]:
        """``ε̂`` of every slice with the current weights, ``slice_batch`` slices per call."""
        eps = torch.empty_like(x)
        with torch.no_grad(), parametrize.cached():
            for b in self._batches():
                self._check_cancel()
                rows = self.problem.rows(b)
                eps[rows] = self.prior.eps(x[rows], t, self.gen)
                yield self.clock.advance()
        return eps, None

    def _eps_dps(self, x: torch.Tensor, t: int, j: int) -> Iterator[Event]:
        """``ε̂`` and DPS's ``∇_{x_t} Σ_z ‖y_z − A x̂₀_z‖`` slice batch by slice batch."""
        p = self.problem
        eps, guidance = torch.empty_like(x), torch.empty_like(x)
        for b in self._batches():
            self._check_cancel()
            rows = p.rows(b)
            xb = x[rows].detach().requires_grad_(True)
            e = self.prior.eps(xb, t, self.gen)
            x0 = p.from_prior(self.schedule.tweedie(xb, e, t))
            residual = p.op.subset(b).forward(x0) - p.y[b]
            norms = residual.abs().pow(2).reshape(residual.shape[0], -1).sum(1).sqrt()
            (grad,) = torch.autograd.grad(norms.sum(), xb)
            eps[rows], guidance[rows] = e.detach(), grad
            yield self.clock.advance()
        return eps, guidance

    def _eps_d3ip(self, x: torch.Tensor, t: int, j: int) -> Iterator[Event]:
        """D3IP: adapt the shared LoRA on ``K`` slices per step, then ``ε̂`` of the volume."""
        if self._in_horizon(t):
            yield from self._adapt(x, t)
        return (yield from self._eps_shared(x, t, j))

    def _eps_reptile(self, meta_states: list[LoRAState]):
        """D3IP-meta pass 1: Reptile on the shared LoRA; ``φ_t`` appended to ``meta_states``."""
        assert self.lora is not None
        lora = self.lora
        adapted_steps = [t for t in self.timesteps if self._in_horizon(t)]

        def step(x: torch.Tensor, t: int, j: int) -> Iterator[Event]:
            phi = lora.state()
            if self._in_horizon(t):
                k = adapted_steps.index(t)
                frac = k / max(len(adapted_steps) - 1, 1)
                eps_step = self.cfg.meta_step_start + frac * (
                    self.cfg.meta_step_end - self.cfg.meta_step_start
                )
                yield from self._adapt(x, t)
                phi = interpolate_states(phi, lora.state(), eps_step)
                lora.load(phi)
            meta_states.append(phi)
            return (yield from self._eps_shared(x, t, j))

        return step

    def _eps_per_slice(
        self,
        states: list[LoRAState] | Callable[[int, int], LoRAState],
        keep: bool = False,
    ):
        """DDIP-style steps: each slice loads its LoRA (``states[i]``, or ``states(i, j)`` at
        sampling step ``j``), adapts on itself, and gives its own ``ε̂``; ``keep`` stores the
        adapted state back (carried across timesteps)."""
        assert self.lora is not None
        lora, p = self.lora, self.problem

        def step(x: torch.Tensor, t: int, j: int) -> Iterator[Event]:
            eps = torch.empty_like(x)
            losses = []
            for i in range(self.n):
                lora.load(states(i, j) if callable(states) else states[i])
                if self._in_horizon(t):
                    losses.append((yield from self._adapt(x, t, slice(i, i + 1), report=False)))
                    if keep:
                        assert isinstance(states, list)
                        states[i] = lora.state()
                self._check_cancel()
                rows = p.rows(slice(i, i + 1))
                with torch.no_grad(), parametrize.cached():
                    eps[rows] = self.prior.eps(x[rows], t, self.gen)
                yield self.clock.advance()
            if losses:
                yield Adapted(t, float(np.mean(losses)), tuple(range(self.n)), tuple(losses))
            return eps, None

        return step

    # -- adaptation -----------------------------------------------------------------------
    def _choose_slices(self) -> slice | torch.Tensor:
        """``K`` slices: contiguous for mbir (z-TV needs neighbours), else random."""
        k = min(self.cfg.k_slices, self.n)
        if self.cfg.method == "d3ip-mbir":
            start = int(self.rng.integers(0, self.n - k + 1))
            return slice(start, start + k)
        return torch.as_tensor(np.sort(self.rng.choice(self.n, size=k, replace=False)))

    def _adapt(
        self,
        x: torch.Tensor,
        t: int,
        fixed: slice | None = None,
        report: bool = True,
    ) -> Iterator[Event]:
        """``L`` AdamW steps (fresh optimiser) of the LoRA on ``‖y − A·DC(x̂₀(θ))‖² / ‖y‖²``
        over ``fixed`` slices or ``K`` drawn per step; returns the mean loss."""
        assert self.lora is not None
        cfg, p = self.cfg, self.problem
        mode = "cg" if cfg.method in ("ddip", "d3ip", "d3ip-meta") else CONSISTENCY[cfg.method]
        self.lora.train(True)
        opt = torch.optim.AdamW(self.lora.parameters(), lr=cfg.lr, weight_decay=0.0)
        losses, chosen = [], fixed
        try:
            for _ in range(cfg.adapt_steps):
                self._check_cancel()
                chosen = fixed if fixed is not None else self._choose_slices()
                rows = p.rows(chosen)
                eps = self.prior.eps(x[rows], t, self.gen)
                x0 = p.from_prior(self.schedule.tweedie(x[rows], eps, t))
                loss = p.relative_loss(p.consistency(x0, chosen, mode, 1), chosen)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                losses.append(loss.detach())
                yield self.clock.advance()
        finally:
            self.lora.train(False)
        values = torch.stack(losses).tolist()
        mean = float(np.mean(values))
        if report:
            yield Adapted(t, mean, _slice_tuple(chosen, self.n), tuple(values))
        return mean


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
