"""Reconstruction methods by name: the one registry behind ``--method`` and the widgets.

A :class:`Method` has a name, the measurement kinds it applies to, typed default settings and
a runner ``run(op, y, settings, seed, progress, extras) -> x``: ``op`` the forward operator,
``y`` the measurement tensor, ``settings`` the defaults updated by the user's values,
``progress(step, total)`` to call as work is done, ``extras`` a dict the runner may fill with
further outputs (``"std"``, ``"adaptation"``); ``x`` is the image ``(Z, Y, X)`` (complex for
MRI). The runner decides whether autograd is on (the classical ones run under ``no_grad``).
Each numeric setting has a :class:`~napari_ddip.recon.config.Bound`, checked with the user's
values before any work is done (the diffusion methods share
:data:`~napari_ddip.recon.config.SETTING_BOUNDS` with :class:`~napari_ddip.recon.ReconConfig`).

To add a method (e.g. the diffusion methods of :mod:`napari_ddip.recon`), call
:func:`register` in this module with a runner that imports its engine lazily, so that
``napari-ddip --help`` stays fast. The CLI takes its ``--method`` choices and its
``--set key=value`` options from here.
"""

from __future__ import annotations

import math
import numbers
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tqdm import tqdm

from napari_ddip import __version__
from napari_ddip.device import available_device
from napari_ddip.io import InputError, Measurement
from napari_ddip.operators import operator_from_measurement
from napari_ddip.physics.operator import LinearOperator
from napari_ddip.recon.config import (
    AT_LEAST_ONE,
    DIFFUSION_METHODS,
    NON_NEGATIVE,
    POSITIVE,
    SETTING_BOUNDS,
    Bound,
    check_bounds,
)
from napari_ddip.solvers import classical

if TYPE_CHECKING:
    from napari_ddip.recon import ReconConfig

Progress = Callable[[int, int], None]
Runner = Callable[
    [LinearOperator, torch.Tensor, dict[str, Any], int, Progress, dict[str, Any]], torch.Tensor
]
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Method:
    """A named reconstruction method.

    Attributes:
        name: what the user types (``--method NAME``).
        kinds: measurement kinds it reconstructs (``"ct"``, ``"mri"``).
        run: the runner (see the module docstring).
        defaults: every setting with its default; the default's type (bool, int, float, str)
            is the setting's type, and a ``None`` default means "automatic, or a float".
        summary: one line for ``--help``.
        bounds: the allowed range of each numeric setting (every one whose default is an int,
            a float or ``None``).
    """

    name: str
    kinds: tuple[str, ...]
    run: Runner
    defaults: Mapping[str, Any] = field(default_factory=dict)
    summary: str = ""
    bounds: Mapping[str, Bound] = field(default_factory=dict)


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS` (names are unique)."""
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


def _coerce(key: str, value: Any, default: Any) -> Any:
    """``value`` (a string from the command line, or already typed) as ``default``'s type; a
    number must be finite (no nan or inf)."""
    typed = _parse(key, value, default) if isinstance(value, str) else value
    if isinstance(typed, numbers.Real) and not math.isfinite(typed):
        raise InputError(f"setting {key}={value!r}: expected a finite number")
    return typed


def _parse(key: str, value: str, default: Any) -> Any:
    """The command-line string ``value`` as ``default``'s type (``None``: auto or a float)."""
    text = value.strip().lower()
    try:
        if isinstance(default, bool):
            if text not in TRUE + FALSE:
                raise ValueError(value)
            return text in TRUE
        if isinstance(default, int):
            return int(value)
        if default is None:
            return None if text in ("auto", "none") else float(value)
        if isinstance(default, float):
            return float(value)
    except ValueError:
        kind = "auto or a number" if default is None else type(default).__name__
        raise InputError(f"setting {key}={value!r}: expected {kind}") from None
    return value


def parse_settings(pairs: Sequence[str]) -> dict[str, str]:
    """``{key: value}`` from ``--set KEY=VALUE`` strings (values stay strings; see
    :func:`resolve_settings`)."""
    settings = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InputError(f"--set expects KEY=VALUE, got {pair!r}")
        settings[key.strip()] = value
    return settings


def resolve_settings(method: Method, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """``method.defaults`` updated by ``overrides`` (coerced to the defaults' types).

    Raises:
        InputError: an unknown setting, a value of the wrong type, not finite, or outside its
            range in ``method.bounds``.
    """
    unknown = sorted(set(overrides) - set(method.defaults))
    if unknown:
        allowed = ", ".join(sorted(method.defaults)) or "none"
        raise InputError(f"method {method.name!r} has no setting {unknown} (settings: {allowed})")
    settings = dict(method.defaults)
    for key, value in overrides.items():
        settings[key] = _coerce(key, value, method.defaults[key])
    try:
        check_bounds(settings, method.bounds)
    except ValueError as exc:
        raise InputError(f"setting {exc}") from None
    return settings


def get_method(name: str, kind: str) -> Method:
    """The method called ``name``, which must apply to measurements of ``kind``."""
    if name not in METHODS:
        raise InputError(f"unknown method {name!r} (methods: {', '.join(METHODS)})")
    method = METHODS[name]
    if kind not in method.kinds:
        usable = ", ".join(n for n, m in METHODS.items() if kind in m.kinds)
        raise InputError(f"method {name!r} does not apply to {kind} data (use one of: {usable})")
    return method


def check_device(name: str) -> torch.device:
    """The torch device called ``name``, which must exist on this machine (InputError)."""
    try:
        return available_device(name)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def reconstruct_measurement(
    m: Measurement,
    method: str,
    settings: Mapping[str, Any] | None = None,
    device: str = "cpu",
    seed: int = 0,
    progress: Progress | None = None,
    extras: dict[str, Any] | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Reconstruct ``m`` with the named method; ``extras`` receives further outputs of the
    method (diffusion: ``"std"`` with several posterior samples, ``"adaptation"`` for D3IP).

    Returns:
        ``(volume, provenance)``: float32 ``(Z, Y, X)`` (the magnitude for MRI), and a
        JSON-ready dict with the method, the full settings, seed, device, version, time and the
        measurement's own provenance.
    """
    chosen = get_method(method, m.kind)
    full = resolve_settings(chosen, settings or {})
    device = check_device(device)
    op = operator_from_measurement(m, device)
    y = torch.from_numpy(m.data).to(device)
    torch.manual_seed(seed)
    start = time.perf_counter()
    outputs = {} if extras is None else extras
    x = chosen.run(op, y, full, seed, progress or (lambda step, total: None), outputs)
    volume = (x.abs() if x.is_complex() else x).float().cpu().numpy()
    provenance = {
        "software": "napari-ddip",
        "version": __version__,
        "method": method,
        "settings": full,
        "seed": seed,
        "device": str(device),
        "seconds": round(time.perf_counter() - start, 3),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "output": "magnitude" if x.is_complex() else "real",
        "measurement": m.provenance,
    }
    return volume, provenance


@contextmanager
def progress_bar(desc: str, quiet: bool = False) -> Iterator[Progress]:
    """A tqdm bar on stderr as a :data:`Progress` callback; it appears at the first step, so
    an error raised before any work is done prints alone (``quiet``: no bar)."""
    bars: list[tqdm] = []

    def progress(step: int, total: int) -> None:
        if not bars:
            bars.append(tqdm(desc=desc, total=total, unit="step", file=sys.stderr, disable=quiet))
        bars[0].total = total
        bars[0].update(step - bars[0].n)

    try:
        yield progress
    finally:
        for bar in bars:
            bar.close()


def _once(compute: Callable[[], torch.Tensor], progress: Progress) -> torch.Tensor:
    """Run a one-step computation and report it as done."""
    x = compute()
    progress(1, 1)
    return x


@torch.no_grad()
def _pinv(
    op: LinearOperator,
    y: torch.Tensor,
    s: dict[str, Any],
    seed: int,
    progress: Progress,
    extras: dict[str, Any],
) -> torch.Tensor:
    return _once(lambda: op.pinv(y), progress)


@torch.no_grad()
def _cg(
    op: LinearOperator,
    y: torch.Tensor,
    s: dict[str, Any],
    seed: int,
    progress: Progress,
    extras: dict[str, Any],
) -> torch.Tensor:
    return _once(
        lambda: classical.cg_least_squares(op, y, n_iter=s["iters"], damping=s["damping"]),
        progress,
    )


@torch.no_grad()
def _tv(
    op: LinearOperator,
    y: torch.Tensor,
    s: dict[str, Any],
    seed: int,
    progress: Progress,
    extras: dict[str, Any],
) -> torch.Tensor:
    def callback(iteration: int, total: int, _: torch.Tensor) -> None:
        progress(iteration, total)

    return classical.admm_tv(
        op, y, lam=s["lam"], rho=s["rho"], n_iter=s["iters"], n_cg=s["cg_iters"], callback=callback
    )


register(Method("fbp", ("ct",), _pinv, {}, "filtered back-projection (filter from the geometry)"))
register(Method("zero-filled", ("mri",), _pinv, {}, "zero-filled inverse FFT (SENSE-combined)"))
register(
    Method(
        "cg",
        ("ct", "mri"),
        _cg,
        {"iters": 20, "damping": 0.0},
        "least squares by conjugate gradients on the normal equations",
        {"iters": AT_LEAST_ONE, "damping": NON_NEGATIVE},
    )
)
register(
    Method(
        "tv",
        ("ct", "mri"),
        _tv,
        {"iters": 30, "cg_iters": 5, "lam": None, "rho": None},
        "3D total variation by ADMM (lam, rho: auto-scaled unless given)",
        {"iters": AT_LEAST_ONE, "cg_iters": AT_LEAST_ONE, "lam": NON_NEGATIVE, "rho": POSITIVE},
    )
)


def diffusion_config(name: str, settings: Mapping[str, Any], seed: int = 0) -> ReconConfig:
    """The engine's :class:`~napari_ddip.recon.ReconConfig` for the diffusion method ``name``
    from its resolved settings (:func:`resolve_settings`; ``warm_start`` is not part of it).

    Raises:
        ValueError: a setting the engine refuses.
    """
    from napari_ddip.recon import ReconConfig

    s = dict(settings)
    counts = {k: None if s[k] is None else int(s[k]) for k in ("adapt_steps", "slice_batch")}
    engine_settings = {k: v for k, v in (s | counts).items() if k != "warm_start"}
    return ReconConfig(method=name, seed=seed, **engine_settings)


def _diffusion_runner(name: str) -> Runner:
    """Runner of the diffusion method ``name`` (the engine is imported when it runs)."""

    def run(
        op: LinearOperator,
        y: torch.Tensor,
        s: dict[str, Any],
        seed: int,
        progress: Progress,
        extras: dict[str, Any],
    ) -> torch.Tensor:
        from napari_ddip.recon import Progress as ProgressEvent
        from napari_ddip.recon import reconstruct, run_to_end
        from napari_ddip.recon.adaptation import load_warm_start

        def on_event(event: object) -> None:
            if isinstance(event, ProgressEvent):
                progress(event.step, event.total)

        try:
            cfg = diffusion_config(name, s, seed)
            warm = load_warm_start(s["warm_start"], s["prior"]) if s["warm_start"] else None
            events = reconstruct(y, op, cfg, device=y.device, warm_start=warm)
            finished = run_to_end(events, on_event)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        extras.update(std=finished.std, adaptation=finished.adaptation)
        volume = finished.volume if finished.complex_volume is None else finished.complex_volume
        return torch.from_numpy(volume)

    return run


def _diffusion_defaults() -> dict[str, Any]:
    """Every :class:`~napari_ddip.recon.ReconConfig` setting but the method and the seed."""
    from napari_ddip.recon.config import ReconConfig

    defaults = ReconConfig().to_dict()
    settings = {k: v for k, v in defaults.items() if k not in ("method", "seed")}
    return settings | {"warm_start": ""}  # an adaptation file to start D3IP from


def _register_diffusion_methods() -> None:
    defaults = _diffusion_defaults()
    for name, summary in DIFFUSION_METHODS.items():
        runner = _diffusion_runner(name)
        register(Method(name, ("ct", "mri"), runner, defaults, summary, SETTING_BOUNDS))


_register_diffusion_methods()
