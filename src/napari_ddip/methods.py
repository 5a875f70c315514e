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
from napari_ddip.io import InputError, Measurement, operator_from_measurement
from napari_ddip.physics.operator import LinearOperator
from napari_ddip.recon.config import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    Bound,
    Setting,
    check_bounds,
    method_settings,
)
from napari_ddip.recon.diffusion_methods import DIFFUSION_METHODS, SHARED_LORA, DiffusionMethod
from napari_ddip.solvers import classical

if TYPE_CHECKING:
    from napari_ddip.recon import ReconConfig

Progress = Callable[[int, int], None]
Runner = Callable[
    [LinearOperator, torch.Tensor, dict[str, Any], int, Progress, dict[str, Any]], torch.Tensor
]
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
#: The setting of an adaptation file to start from (methods that can warm-start).
WARM_START = Setting("", str, group=SHARED_LORA)


@dataclass(frozen=True)
class Method:
    """A named reconstruction method.

    Attributes:
        name: what the user types (``--method NAME``).
        kinds: measurement kinds it reconstructs (``"ct"``, ``"mri"``).
        run: the runner (see the module docstring).
        settings: every setting it takes (default, type, range).
        summary: one line for ``--help``.
        diffusion: a diffusion method's record (None for a classical method).
    """

    name: str
    kinds: tuple[str, ...]
    run: Runner
    settings: Mapping[str, Setting] = field(default_factory=dict)
    summary: str = ""
    diffusion: DiffusionMethod | None = None

    @property
    def defaults(self) -> dict[str, Any]:
        """Every setting with its default."""
        return {key: s.default for key, s in self.settings.items()}

    @property
    def bounds(self) -> dict[str, Bound]:
        """The allowed range of each numeric setting."""
        return {key: s.bound for key, s in self.settings.items() if s.bound is not None}

    @property
    def can_save_adaptation(self) -> bool:
        return self.diffusion is not None and self.diffusion.can_save_adaptation

    @property
    def can_warm_start(self) -> bool:
        return self.diffusion is not None and self.diffusion.can_warm_start


METHODS: dict[str, Method] = {}


def register(method: Method) -> Method:
    """Add ``method`` to :data:`METHODS` (names are unique)."""
    if method.name in METHODS:
        raise ValueError(f"method {method.name!r} is already registered")
    METHODS[method.name] = method
    return method


def _coerce(key: str, value: Any, setting: Setting) -> Any:
    """``value`` (text from the command line, or already typed) as ``setting``'s type; a
    number must be finite (no nan or inf)."""
    typed = _parse(key, value, setting) if isinstance(value, str) else value
    if isinstance(typed, numbers.Real) and not math.isfinite(typed):
        raise InputError(f"setting {key}={value!r}: expected a finite number")
    return typed


def _parse(key: str, value: str, setting: Setting) -> Any:
    """The text ``value`` as ``setting``'s type (``auto``/``none``: None where that is the
    default)."""
    text, kind = value.strip().lower(), setting.kind
    try:
        if setting.default is None and text in ("auto", "none"):
            return None
        if kind is bool:
            if text not in TRUE + FALSE:
                raise ValueError(value)
            return text in TRUE
        if kind in (int, float):
            return kind(value)
    except ValueError:
        if setting.default is None:
            expected = "auto or a whole number" if kind is int else "auto or a number"
        else:
            expected = kind.__name__
        raise InputError(f"setting {key}={value!r}: expected {expected}") from None
    return value


def methods_that(ability: str) -> list[str]:
    """Names of the methods whose :class:`Method` property ``ability`` is true (e.g.
    ``"can_warm_start"``)."""
    return [name for name, m in METHODS.items() if getattr(m, ability)]


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
    """Every setting of ``method``: its defaults updated by ``overrides`` (text parsed, or
    values, as each setting's type).

    Raises:
        InputError: a setting the method does not take (naming those it does), a value of the
            wrong type, not finite, or outside its range.
    """
    unknown = sorted(set(overrides) - set(method.settings))
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        takes = ", ".join(method.settings) or "none"
        raise InputError(f"method {method.name!r} takes no setting {names} (its settings: {takes})")
    settings = dict(method.defaults)
    for key, value in overrides.items():
        settings[key] = _coerce(key, value, method.settings[key])
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
    return _once(lambda: classical.fbp(op, y), progress)


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


def _setting(default: Any, bound: Bound | None = None, kind: type = float) -> Setting:
    """A classical method's setting (``kind``: the type where the default is ``None``)."""
    return Setting(default, kind if default is None else type(default), bound)


register(Method("fbp", ("ct",), _pinv, {}, "filtered back-projection (filter from the geometry)"))
register(Method("zero-filled", ("mri",), _pinv, {}, "zero-filled inverse FFT (SENSE-combined)"))
register(
    Method(
        "cg",
        ("ct", "mri"),
        _cg,
        {"iters": _setting(20, AT_LEAST_ONE), "damping": _setting(0.0, NON_NEGATIVE)},
        "least squares by conjugate gradients on the normal equations",
    )
)
register(
    Method(
        "tv",
        ("ct", "mri"),
        _tv,
        {
            "iters": _setting(30, AT_LEAST_ONE),
            "cg_iters": _setting(5, AT_LEAST_ONE),
            "lam": _setting(None, NON_NEGATIVE),
            "rho": _setting(None, POSITIVE),
        },
        "3D total variation by ADMM (lam, rho: auto-scaled unless given)",
    )
)


def diffusion_config(name: str, settings: Mapping[str, Any], seed: int = 0) -> ReconConfig:
    """The engine's :class:`~napari_ddip.recon.ReconConfig` for the diffusion method ``name``
    from its resolved settings (:func:`resolve_settings`; ``warm_start`` is not part of it).

    Raises:
        ValueError: a setting the engine refuses.
    """
    from napari_ddip.recon import ReconConfig

    engine_settings = {k: v for k, v in settings.items() if k != "warm_start"}
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
            path = s.get("warm_start")
            warm = load_warm_start(path, s["prior"]) if path else None
            events = reconstruct(y, op, cfg, device=y.device, warm_start=warm)
            finished = run_to_end(events, on_event)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        extras.update(std=finished.std, adaptation=finished.adaptation)
        volume = finished.volume if finished.complex_volume is None else finished.complex_volume
        return torch.from_numpy(volume)

    return run


def _register_diffusion_methods() -> None:
    """One :class:`Method` per record of :data:`DIFFUSION_METHODS`, with the settings its
    record implies (and ``warm_start`` where it can warm-start)."""
    for spec in DIFFUSION_METHODS.values():
        settings = method_settings(spec)
        if spec.can_warm_start:
            settings["warm_start"] = WARM_START
        runner = _diffusion_runner(spec.name)
        register(Method(spec.name, ("ct", "mri"), runner, settings, spec.summary, spec))


_register_diffusion_methods()
