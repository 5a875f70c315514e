"""Equivariant self-supervision of the prior on the volume being reconstructed: a last stage of
any diffusion method (``ReconConfig.equivariant``).

The idea is equivariant imaging's (Chen, Tachella & Davies 2021, "Equivariant imaging:
learning beyond the range space"): anatomy has no preferred in-plane orientation, a scan does
— a sparse-view CT measures its own 60 directions, an undersampled k-space its own
frequencies. The reconstruction ``x₁`` rotated by ``g`` is an image like the volume that the
same scan measures in directions it missed, and reconstructing it shows what the method does
to such an image, with the answer known — but only where the rotation is not a symmetry of
the scan: a rotation by a multiple of the view spacing maps a CT scan's views onto
themselves (``A T_g = P A`` with ``P`` a permutation of the views), so its copy is measured
in the directions already measured and teaches nothing about the missed ones. The ``N``
rotations are ``g_i = 360°·(i + ½)/N``, none of them a multiple of 90°; for a CT scan each
is moved by at most half a view spacing to where the rotated views lie farthest from the
measured ones (:func:`rotation_angles`: half-way between two views of a regular scan, 43.5°
instead of 45° for 60 views over 180°):

1. ``x₁``: the method's reconstruction of ``y``.
2. For each ``g``: ``y_g = A T_g x₁ + n`` of a block of at most ``equivariant_slices``
   contiguous slices at the centre of ``x₁`` (:func:`~napari_ddip.slab.central_block`; the
   copies' cost does not grow with the volume), with the measurement's own operator ``A``
   (geometry, mask, coils) and noise ``n`` at the measurement's level (``noise_std``; else for a
   sinogram the level whose estimate on ``A x₁ + n`` matches the measurement's,
   :func:`matched_noise`; else none for k-space), reconstructed by the same method and settings
   (one sample, its own seed): ``r_g``. With noise (``σ > 0``) also the unrotated copy
   ``g = 0``, ``A x₁ + n``: it shows what the method lets through of the noise in the directions the
   scan measured (it raised the MNI tuning slab's CT with 4 and with 8 rotations); without noise
   it reconstructs ``x₁`` almost exactly and only teaches the network to leave the image alone
   (it lowered ×8 MRI), so it is left out.
3. The prior's denoiser ``D`` (all its weights) trained by Adam to map ``r_g`` to ``T_g x₁`` as
   a denoiser at the fixed level ``s₀ = RMS(r_g − T_g x₁)``: random ``64²`` patches,
   left–right flips; the reference volume is never seen, only the measurement. A denoiser
   prior (FFDNet) denoises at ``s₀`` itself, a diffusion prior by Tweedie at the timestep of
   that level (:meth:`~napari_ddip.prior.model.DiffusionPrior.denoise`); Adam at the kind's
   fine-tuning rate (:func:`~napari_ddip.prior.train.config.finetune_learning_rate`: 1e-4
   for a diffusion prior, chosen over 1e-5 on the MNI tuning slab's CT, 1e-5 for FFDNet).
4. The output: ``D(x₁, s₀)`` averaged over the eight flips and quarter turns of each slice
   (:func:`~napari_ddip.prior.symmetry.ensemble_mean`).

Measured with the FFDNet prior, DDS + 3D TV at 50 steps, 4 and 8 rotations, 300 steps, and
with the ellipse prior at 20 steps (BENCHMARKS "Equivariant self-supervision"). ``T_g`` is a
bicubic rotation about each slice's centre (:func:`rotate_slices`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from napari_ddip.physics.ct import ParallelBeamCT
from napari_ddip.physics.noise import estimate_noise_std
from napari_ddip.physics.operator import LinearOperator
from napari_ddip.prior.denoiser import DenoiserPrior
from napari_ddip.prior.symmetry import ensemble_mean
from napari_ddip.prior.train.config import finetune_learning_rate
from napari_ddip.prior.weights import Prior
from napari_ddip.recon.config import ReconConfig
from napari_ddip.recon.engine import derive_seed
from napari_ddip.recon.estimate import timed
from napari_ddip.recon.events import Adapted, Event, Finished, Preview, Progress, Started
from napari_ddip.slab import central_block

#: Patch side (pixels) and patches per Adam step of step 3.
PATCH, BATCH = 64, 8
#: Fixed-point iterations of :func:`matched_noise`.
MATCH_ITERATIONS = 4
#: Symmetries of each slice the refined output is averaged over (step 4).
ENSEMBLE = 8
#: ``(y, A, cfg) → events`` of one engine run of measurement ``y`` by operator ``A`` (both
#: on the run's device).
RunEvents = Callable[[torch.Tensor, LinearOperator, ReconConfig], Iterator[Event]]


def rotation_angles(n: int, views_deg: Sequence[float] | None = None) -> list[float]:
    """The ``n`` rotations ``360°·(i + ½)/n`` (degrees); with a CT scan's view angles
    ``views_deg`` (degrees, two or more), each moved to :func:`between_views`."""
    nominal = [360.0 * (i + 0.5) / n for i in range(n)]
    if views_deg is None or len(views_deg) < 2:
        return nominal
    return [between_views(g, views_deg) for g in nominal]


def _folded(views_deg: Sequence[float]) -> np.ndarray:
    """View angles (degrees) modulo 180°: a parallel-beam view and its opposite see the same
    lines."""
    return np.mod(np.asarray(views_deg, dtype=np.float64), 180.0)


def view_gap(g: float, views_deg: Sequence[float]) -> float:
    """How far (degrees) the views of a parallel-beam scan rotated by ``g`` lie from its own:
    ``min |v + g − w|`` over views ``v, w`` modulo 180° (the image rotated by ``g`` seen at
    ``v`` is the image seen at ``v + g``; a view and its opposite see the same lines). 0 when
    ``g`` is a symmetry of the scan; at most half the spacing of a regular scan."""
    v = _folded(views_deg)
    d = np.mod(v[:, None] + g - v[None, :], 180.0)
    return float(np.minimum(d, 180.0 - d).min())


def between_views(g: float, views_deg: Sequence[float], candidates: int = 65) -> float:
    """The rotation within half the scan's (median) view spacing of ``g`` (degrees) with the
    largest :func:`view_gap`, the nearest to ``g`` among equals (``candidates`` evenly
    spaced tries)."""
    v = np.sort(_folded(views_deg))
    spacing = float(np.median(np.diff(np.append(v, v[0] + 180.0))))
    tries = sorted(g + spacing * np.linspace(-0.5, 0.5, candidates), key=lambda c: abs(c - g))
    return float(max(tries, key=lambda c: round(view_gap(c, views_deg), 9)))


def rotate_slices(x: torch.Tensor, degrees: float) -> torch.Tensor:
    """Each slice of ``x (Z, Y, X)`` (real) rotated by ``degrees`` about its centre, as
    ``torch.rot90(x, 1, (1, 2))`` for 90° (row 0 at the top: counter-clockwise on screen);
    bicubic, zero outside the slice, clamped to ``x``'s range (bicubic's overshoot at edges).
    Pixel ``p`` (from the centre) of the output is ``x`` at ``R(−g) p``; a non-square slice
    keeps its shape (corners leave and zeros enter)."""
    z, h, w = x.shape
    theta = math.radians(degrees)
    cos, sin = math.cos(theta), math.sin(theta)
    rows = torch.arange(h, dtype=torch.float32, device=x.device) - (h - 1) / 2
    cols = torch.arange(w, dtype=torch.float32, device=x.device) - (w - 1) / 2
    r, c = torch.meshgrid(rows, cols, indexing="ij")
    # rot90 takes the output's (r, c) from the input's (c, −r): R(−g) in (row, column)
    src_r, src_c = cos * r + sin * c, -sin * r + cos * c
    # grid_sample (align_corners=False): −1 and 1 are the outer edges of the border pixels
    grid = torch.stack((src_c * 2 / w, src_r * 2 / h), dim=-1).expand(z, h, w, 2)
    out = F.grid_sample(
        x[:, None].float(), grid, mode="bicubic", padding_mode="zeros", align_corners=False
    )[:, 0]
    return out.clamp(float(x.min()), float(x.max())).to(x.dtype)


def simulated_measurement(
    op: LinearOperator, image: torch.Tensor, sigma: float, generator: torch.Generator
) -> torch.Tensor:
    """``A·image + n`` for real images ``(Z, Y, X)``: ``n`` real Gaussian of standard
    deviation ``sigma`` for a real measurement; for k-space circular complex
    (``E|n|² = σ²``) on the measured entries only (those where ``A`` of a random image is
    not zero), the others stay exactly zero."""
    complex_op = op.is_complex
    clean = op.forward(image.to(torch.complex64) if complex_op else image)
    if sigma == 0:
        return clean
    n = torch.randn((2, *clean.shape) if complex_op else clean.shape, generator=generator)
    n = n.to(clean.device)
    if not complex_op:
        return clean + sigma * n
    probe = torch.randn(image.shape, generator=generator, dtype=torch.complex64)
    measured = op.forward(probe.to(image.device)) != 0
    return clean + torch.complex(n[0], n[1]) * (sigma / 2**0.5) * measured


def matched_noise(
    op: LinearOperator,
    image: torch.Tensor,
    y: torch.Tensor,
    generator: torch.Generator,
    iterations: int = MATCH_ITERATIONS,
) -> float:
    """The noise ``σ`` of a simulated sinogram of ``image`` whose noise estimate
    (:func:`~napari_ddip.physics.noise.estimate_noise_std`) equals the measurement ``y``'s:
    the estimate reads a sinogram's own content as noise too (1.3× the true noise on the
    MNI slabs of BENCHMARKS, 1.7× on the b0 scan), so a copy simulated at the estimate
    itself would be noisier than the measurement. Fixed point ``σ ← σ̂(y)·σ/σ̂(A·image +
    σn)`` from ``σ = σ̂(y)``: on the MNI tuning slab with ``image`` the DDS + 3D TV result,
    0.205 against the true 0.204 and the estimate 0.262 (BENCHMARKS, "Equivariant
    self-supervision")."""
    clean = op.forward(image)
    measured = estimate_noise_std(y)
    sigma = measured
    for _ in range(iterations):
        if sigma <= 0:
            return 0.0
        n = torch.randn(clean.shape, generator=generator).to(clean.device)
        sigma *= measured / max(estimate_noise_std(clean + sigma * n), 1e-12)
    return sigma


def fine_tune(
    prior: Prior,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    level: float,
    steps: int,
    generator: torch.Generator,
) -> Iterator[float]:
    """Train all of ``prior``'s weights (Adam at its kind's fine-tuning rate) to
    map ``inputs`` to ``targets`` (both ``(B, Y, X)``, prior units) as a denoiser at
    ``level``: each of ``steps`` steps takes :data:`BATCH` random :data:`PATCH`² patches (the
    slice if smaller), flipped left–right at random, and minimises their mean squared error
    (a patch prior's own tiling drawn from ``generator`` too). Yields each step's loss."""
    net = prior.net
    for p in net.parameters():
        p.requires_grad_(True)
    rate = finetune_learning_rate(isinstance(prior, DenoiserPrior))
    optimizer = torch.optim.Adam(net.parameters(), lr=rate)
    n, h, w = inputs.shape
    ph, pw = min(PATCH, h), min(PATCH, w)
    try:
        for _ in range(steps):
            idx = torch.randint(0, n, (BATCH,), generator=generator).tolist()
            ys = torch.randint(0, h - ph + 1, (BATCH,), generator=generator).tolist()
            xs = torch.randint(0, w - pw + 1, (BATCH,), generator=generator).tolist()
            flip = torch.rand(BATCH, generator=generator) < 0.5
            corners = list(zip(idx, ys, xs, strict=True))
            a = torch.stack([inputs[i, y : y + ph, x : x + pw] for i, y, x in corners])
            b = torch.stack([targets[i, y : y + ph, x : x + pw] for i, y, x in corners])
            flip = flip.to(a.device)[:, None, None]
            a = torch.where(flip, a.flip(-1), a)
            b = torch.where(flip, b.flip(-1), b)
            loss = (prior.denoise(a, level, generator) - b).pow(2).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            yield float(loss.detach())
    finally:
        for p in net.parameters():
            p.requires_grad_(False)


@torch.no_grad()
def refine(
    prior: Prior, x: torch.Tensor, level: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """``D(x, level)`` of slices ``x (Z, Y, X)`` (prior units) averaged over
    :data:`ENSEMBLE` flips and quarter turns of each slice (step 4); a non-square slice over
    the two that keep its shape (the identity and the half turn). A patch prior draws its
    tiling from ``generator``."""
    square = x.shape[-1] == x.shape[-2]
    n = ENSEMBLE if square else 2
    return ensemble_mean(lambda v: prior.denoise(v, level, generator), x, n)


class EquivariantRun:
    """A diffusion method followed by the equivariant self-supervision of its prior: one run's
    events (as :func:`~napari_ddip.recon.reconstruct`), with the ``N + 1`` reconstructions
    and the fine-tuning under one progress count.

    Args:
        y: the measurement (on the run's device).
        op: its operator (on the run's device).
        cfg: the settings (``equivariant`` rotations, ``equivariant_steps``,
            ``equivariant_slices``).
        prior: the base prior, untouched (a copy is fine-tuned).
        run_events: one engine run of a measurement by an operator with settings.
        cancel: whether the run is cancelled (checked at each fine-tuning step; the engine
            runs check their own).
    """

    def __init__(
        self,
        y: torch.Tensor,
        op: LinearOperator,
        cfg: ReconConfig,
        prior: Prior,
        run_events: RunEvents,
        cancel: Callable[[], bool],
    ) -> None:
        self.y, self.op, self.cfg, self.run_events, self.cancel = y, op, cfg, run_events, cancel
        self.prior = prior
        views = op.angles_deg if isinstance(op, ParallelBeamCT) else None
        self.angles = rotation_angles(cfg.equivariant, views)
        #: The slices of the copies and their operator.
        self.block = central_block(y.shape[0], cfg.equivariant_slices)
        self.block_op = op.subset(self.block)
        #: Whether the unrotated copy is reconstructed too: as the copies will carry noise
        #: (settled by the noise level once the first run is done).
        self.unrotated = (cfg.noise_std or 0) > 0 or (cfg.noise_std is None and not op.is_complex)
        self.steps = cfg.equivariant_steps
        #: Each rotated reconstruction: one sample, no previews, no further self-supervision.
        self.rotated_cfg = dataclasses.replace(cfg, samples=1, preview_every=0, equivariant=0)
        self.start = time.perf_counter()
        # units and seconds: of the first run, of each rotated run (estimate until one has
        # run), of one fine-tuning step (measured once, before any work)
        self.first_units = self.done = 0.0
        self.rotated_units = self.rotated_seconds = 0.0
        self.step_seconds = self._fine_tuning_step_seconds()

    def _fine_tuning_step_seconds(self) -> float:
        """Seconds of one fine-tuning step (timed on a copy, after a warm-up step)."""
        h, w = (min(PATCH, side) for side in self.op.image_shape)
        prior = copy.deepcopy(self.prior).to(self.y.device)
        patches = torch.rand(BATCH, h, w, generator=torch.Generator().manual_seed(0))
        patches = patches.to(self.y.device)

        def step() -> None:
            steps = fine_tune(prior, patches, patches, 0.01, 1, torch.Generator())
            next(steps)
            steps.close()

        step()
        return timed(step, self.y.device)

    # -- bookkeeping ----------------------------------------------------------------------
    @property
    def copies(self) -> int:
        """Reconstructions after the first: the rotations and the unrotated copy."""
        return len(self.angles) + self.unrotated

    @property
    def total(self) -> int:
        """Work units of the whole run: the first run's, the copies' runs, one per
        fine-tuning step."""
        return round(self.first_units + self.copies * self.rotated_units) + self.steps

    def _eta(self, left_in_run: float | None, runs_left: int) -> float | None:
        """Seconds left: of the current run, of ``runs_left`` runs of copies, of the
        fine-tuning."""
        if left_in_run is None:
            return None
        return left_in_run + runs_left * self.rotated_seconds + self.steps * self.step_seconds

    def _progress(self, event: Progress, step: int, runs_left: int, phase: str) -> Progress:
        """``event`` of one of the runs as a step of the whole run's count."""
        return dataclasses.replace(
            event,
            step=step,
            total=self.total,
            elapsed=time.perf_counter() - self.start,
            eta=self._eta(event.eta, runs_left),
            phase=phase,
        )

    # -- the run --------------------------------------------------------------------------
    def events(self) -> Iterator[Event]:
        n, block = len(self.angles), self.block
        self.record: dict[str, Any] = {
            "rotations": n,
            "angles": self.angles,
            "steps": self.steps,
            "slices": [block.start, block.stop],
        }
        first = yield from self._first_run()
        if first.partial:
            yield self._unrefined(first)
            return
        scale = float(first.metadata["scale"])
        x1 = torch.from_numpy(first.volume).to(self.y.device)
        pairs = yield from self._rotated_pairs(x1)
        if pairs is None:
            yield self._unrefined(first)
            return
        inputs, targets = (torch.cat(p) / scale for p in zip(*pairs, strict=True))
        level = float((inputs - targets).pow(2).mean().sqrt())
        self.record["level"] = level
        prior = yield from self._fine_tuned(inputs, targets, level)
        if prior is None:
            yield self._unrefined(first)
            return
        gen = torch.Generator().manual_seed(_seed(self.cfg.seed, "refinement"))
        yield self._refined(first, refine(prior, x1 / scale, level, gen) * scale)

    def _first_run(self) -> Iterator[Event]:
        """Step 1: the method's run, its events passed on under the whole run's count;
        returns its :class:`Finished`."""
        n, first = self.copies, None
        # (the engine ignores `equivariant`)
        for event in self.run_events(self.y, self.op, self.cfg):
            if isinstance(event, Started):
                # a copy is one sample of the block: its work, counted in the first run's
                # units, and its seconds scale with the slices
                slices = self.block.stop - self.block.start
                share = slices / (self.y.shape[0] * self.cfg.samples)
                self.first_units = event.total
                self.rotated_units = event.total * share
                self.rotated_seconds = (event.estimate or 0.0) * share
                estimate = None
                if event.estimate is not None:
                    estimate = round(event.estimate + self._eta(0.0, n), 3)
                yield dataclasses.replace(event, total=self.total, estimate=estimate)
            elif isinstance(event, Progress):  # the engine's total falls where work is dropped
                self.first_units = event.total
                yield self._progress(event, event.step, n, event.phase)
            elif isinstance(event, Finished):
                first = event
            else:
                yield event
        assert first is not None
        self.done = self.first_units
        return first

    def _rotated_pairs(self, x1: torch.Tensor) -> Iterator[Event]:
        """Step 2: returns ``[(r_g, T_g x₁)]`` of the block's slices (measurement units; the
        unrotated copy's last), None if cancelled."""
        n, pairs = len(self.angles), []
        sigma = self.cfg.noise_std
        if sigma is None and not self.op.is_complex:  # k-space without noise_std: none
            draw = torch.Generator().manual_seed(_seed(self.cfg.seed, "noise match"))
            sigma = matched_noise(self.op, x1, self.y, draw)
        self.record["noise_std"] = sigma = sigma or 0.0
        self.record["unrotated"] = self.unrotated = sigma > 0
        x_block = x1[self.block]
        copies = [
            (i, f"rotation {i + 1}/{n}", rotate_slices(x_block, g))
            for i, g in enumerate(self.angles)
        ]
        if self.unrotated:
            copies.append(("unrotated", "unrotated copy", x_block))
        for k, (key, phase, target) in enumerate(copies):
            noise = torch.Generator().manual_seed(_seed(self.cfg.seed, "noise", key))
            y_g = simulated_measurement(self.block_op, target, sigma, noise)
            cfg = dataclasses.replace(self.rotated_cfg, seed=_seed(self.cfg.seed, "run", key))
            finished: Finished | None = None
            run_start = time.perf_counter()
            for event in self.run_events(y_g, self.block_op, cfg):
                if isinstance(event, Progress):  # its share of the copy's budgeted units
                    step = round(self.done + self.rotated_units * event.step / event.total)
                    yield self._progress(event, step, len(copies) - k - 1, phase)
                elif isinstance(event, Finished):
                    finished = event
                # the rotated runs' previews and losses are not of the measured volume
                elif not isinstance(event, (Started, Preview, Adapted)):
                    yield event
            assert finished is not None
            if finished.partial:
                return None
            self.rotated_seconds = time.perf_counter() - run_start
            self.done += self.rotated_units
            pairs.append((torch.from_numpy(finished.volume).to(self.y.device), target))
        return pairs

    def _fine_tuned(self, inputs: torch.Tensor, targets: torch.Tensor, level: float):
        """Step 3: a copy of the prior fine-tuned on the pairs (prior units); None if
        cancelled."""
        prior = copy.deepcopy(self.prior).to(self.y.device)
        gen = torch.Generator().manual_seed(_seed(self.cfg.seed, "fine-tuning"))
        start = time.perf_counter()
        for k, _ in enumerate(fine_tune(prior, inputs, targets, level, self.steps, gen)):
            if self.cancel():
                return None
            left = (time.perf_counter() - start) / (k + 1) * (self.steps - k - 1)
            yield Progress(
                round(self.done) + k + 1,
                self.total,
                time.perf_counter() - self.start,
                left,
                "equivariant fine-tuning",
                k + 1,
                self.steps,
            )
        return prior

    def _metadata(self, first: Finished, done: bool) -> dict[str, Any]:
        return first.metadata | {
            "seconds": round(time.perf_counter() - self.start, 3),
            "equivariant": self.record | {"done": done},
        }

    def _unrefined(self, first: Finished) -> Finished:
        """The first run's volume (complete unless it was cancelled itself), marked partial:
        cancelled before the refinement."""
        metadata = self._metadata(first, False) | {"partial": True}
        return dataclasses.replace(first, metadata=metadata, partial=True)

    def _refined(self, first: Finished, refined: torch.Tensor) -> Finished:
        """The first run's result with the refined volume (step 4)."""
        volume = refined.float().cpu().numpy()
        complex_volume = None
        if first.complex_volume is not None:  # the refined magnitude with x₁'s phase
            complex_volume = (volume * np.exp(1j * np.angle(first.complex_volume))).astype(
                np.complex64
            )
        return dataclasses.replace(
            first,
            volume=volume,
            complex_volume=complex_volume,
            metadata=self._metadata(first, True),
        )


def _seed(seed: int, *keys: object) -> int:
    """The seed of the self-supervision's draw named by ``keys``."""
    return derive_seed(seed, "equivariant", *keys)
