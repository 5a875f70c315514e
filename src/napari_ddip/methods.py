"""Reconstruction methods by name, and the one route from a measurement to a volume.

:data:`METHODS` is the registry behind ``--method``, the Reconstruct widget, the demo and the
benchmarks. A :class:`Method` records the measurement kinds it applies to and the settings it
takes (:class:`~napari_ddip.recon.config.Setting`: default, type, range); a classical method
has a runner, a diffusion method its :class:`~napari_ddip.recon.DiffusionMethod` record, from
which its settings follow (and whether it can save or warm-start an adaptation).

Every face reconstructs through :func:`prepare` (the one check of the method, the settings and
the device, before any work) and :func:`run` (the engine or the classical runner, events to
the caller, provenance); :func:`reconstruct_measurement` is the two in one call::

    result = reconstruct_measurement(m, "tv", {"iters": 30})
    result.volume, result.provenance

A new classical method is one :func:`register` call here with a runner
``run(op, y, settings, progress) -> x`` (``op`` the forward operator, ``y`` the measurement
tensor, ``settings`` the checked values, ``progress(step, total)`` to call as work is done;
``x`` the image ``(Z, Y, X)``, complex for MRI); a new diffusion method is one record in
:mod:`napari_ddip.recon.diffusion_methods`.
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
from pathlib import Path
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
    NON_NEGATIVE,
    POSITIVE,
    Bound,
    Setting,
    check_bounds,
    method_settings,
)
from napari_ddip.recon.diffusion_methods import (
    DIFFUSION_METHODS,
    SHARED_LORA,
    DiffusionMethod,
)
from napari_ddip.solvers import classical

if TYPE_CHECKING:
    from napari_ddip.recon import Finished, ReconConfig
    from napari_ddip.recon.adaptation import Adaptation
    from napari_ddip.recon.engine import Cancel

Progress = Callable[[int, int], None]
OnEvent = Callable[[Any], None]
Runner = Callable[[LinearOperator, torch.Tensor, dict[str, Any], Progress], torch.Tensor]
TRUE, FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
#: The setting of an adaptation file to start from (methods that can warm-start).
WARM_START = Setting(
    "",
    str,
    group=SHARED_LORA,
    help="an adaptation (.safetensors) saved by an earlier run to start from (empty: none)",
)


@dataclass(frozen=True)
class Method:
    """A named reconstruction method.

    Attributes:
        name: what the user types (``--method NAME``).
        kinds: measurement kinds it reconstructs (``"ct"``, ``"mri"``).
        summary: one line for ``--help`` and the widget.
        settings: every setting it takes.
        runner: a classical method's runner (see the module docstring).
        diffusion: a diffusion method's record (the engine runs it).
    """

    name: str
    kinds: tuple[str, ...]
    summary: str = ""
    settings: Mapping[str, Setting] = field(default_factory=dict)
    runner: Runner | None = None
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


def methods_that(ability: str) -> list[str]:
    """Names of the methods whose :class:`Method` property ``ability`` is true (e.g.
    ``"can_warm_start"``)."""
    return [name for name, m in METHODS.items() if getattr(m, ability)]


# -- settings -----------------------------------------------------------------------------


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
    values, as each setting's type). Ranges are checked by :func:`prepare`.

    Raises:
        InputError: a setting the method does not take (naming those it does), a value of the
            wrong type or not finite.
    """
    settings = method.settings
    unknown = sorted(set(overrides) - set(settings))
    if unknown:
        names = ", ".join(repr(k) for k in unknown)
        takes = ", ".join(settings) or "none"
        raise InputError(f"method {method.name!r} takes no setting {names} (its settings: {takes})")
    values = dict(method.defaults)
    for key, value in overrides.items():
        values[key] = _coerce(key, value, settings[key])
    return values


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


def get_method(name: str, kind: str) -> Method:
    """The method called ``name``, which must apply to measurements of ``kind``."""
    if name not in METHODS:
        raise InputError(f"unknown method {name!r} (methods: {', '.join(METHODS)})")
    method = METHODS[name]
    if kind not in method.kinds:
        usable = ", ".join(n for n, m in METHODS.items() if kind in m.kinds)
        raise InputError(f"method {name!r} does not apply to {kind} data (use one of: {usable})")
    return method


def check_device(name: str | torch.device) -> torch.device:
    """The torch device called ``name``, which must exist on this machine (InputError)."""
    try:
        return available_device(name)
    except ValueError as exc:
        raise InputError(str(exc)) from None


# -- the route ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """A reconstruction checked by :func:`prepare`, ready for :func:`run`.

    Attributes:
        measurement: what to reconstruct.
        method: the method's record.
        settings: every setting it takes, typed and in range.
        device: an existing torch device.
        seed: seed of every random draw.
        config: the engine's settings (diffusion methods; None for classical ones).
    """

    measurement: Measurement
    method: Method
    settings: dict[str, Any]
    device: torch.device
    seed: int
    config: ReconConfig | None


@dataclass(frozen=True)
class Reconstruction:
    """What :func:`run` returns.

    Attributes:
        volume: ``(Z, Y, X)`` float32 (the magnitude for MRI; with several posterior samples
            their mean).
        provenance: JSON-ready record of the run (:func:`make_provenance`).
        std: per-voxel standard deviation of the posterior samples (``samples > 1``).
        adaptation: shared-LoRA states by timestep, for :func:`write_adaptation`.
        partial: cancelled part way (diffusion methods keep their current estimate).
    """

    volume: np.ndarray
    provenance: dict[str, Any]
    std: np.ndarray | None = None
    adaptation: Adaptation | None = None
    partial: bool = False


def prepare(
    m: Measurement,
    method: str,
    settings: Mapping[str, Any] | None = None,
    device: str | torch.device = "cpu",
    seed: int = 0,
) -> Request:
    """Check everything about a reconstruction before any work: the method applies to ``m``,
    each setting is one it takes, of its type and in its range (checked once, here), and
    ``device`` exists.

    Raises:
        InputError: what to change.
    """
    chosen = get_method(method, m.kind)
    values = resolve_settings(chosen, settings or {})
    try:
        if chosen.diffusion is None:
            check_bounds(values, chosen.bounds)
            config = None
        else:
            from napari_ddip.recon import ReconConfig

            engine = {k: v for k, v in values.items() if k != "warm_start"}
            config = ReconConfig(method=chosen.name, seed=seed, **engine)
    except ValueError as exc:
        raise InputError(f"setting {exc}") from None
    return Request(m, chosen, values, check_device(device), seed, config)


def run(request: Request, cancel: Cancel = None, on_event: OnEvent | None = None) -> Reconstruction:
    """Reconstruct ``request``, passing events to ``on_event``: the engine's
    (:class:`~napari_ddip.recon.Started`, ``Progress``, ``Adapted``, ``Preview``) for a
    diffusion method, :class:`~napari_ddip.recon.Progress` for a classical one.

    ``cancel`` (a ``threading.Event`` or a callable) stops the run soon after it is set: a
    diffusion method returns its partial result, a classical one raises
    :class:`~napari_ddip.recon.Cancelled`.

    Raises:
        InputError: the measurement or a file it needs is refused.
        napari_ddip.prior.weights.PriorLoadError: the prior does not load.
    """
    from napari_ddip.prior.weights import PriorLoadError

    emit = on_event or (lambda event: None)
    op = operator_from_measurement(request.measurement, request.device)
    torch.manual_seed(request.seed)
    start = time.perf_counter()
    try:
        if request.config is None:
            x = _run_classical(request, op, cancel, emit)
            volume = (x.abs() if x.is_complex() else x).float().cpu().numpy()
            complex_output, done = x.is_complex(), None
        else:
            done = _run_diffusion(request, op, request.config, cancel, emit)
            volume, complex_output = done.volume, done.complex_volume is not None
    except (InputError, PriorLoadError):
        raise
    except ValueError as exc:  # the engine's word for input it refuses
        raise InputError(str(exc)) from None
    seconds = round(time.perf_counter() - start, 3)
    output = "magnitude" if complex_output else "real"
    if done is None:
        return Reconstruction(volume, make_provenance(request, output, seconds))
    provenance = make_provenance(request, output, seconds, done.metadata)
    return Reconstruction(volume, provenance, done.std, done.adaptation, done.partial)


def reconstruct_measurement(
    m: Measurement,
    method: str,
    settings: Mapping[str, Any] | None = None,
    *,
    device: str | torch.device = "cpu",
    seed: int = 0,
    cancel: Cancel = None,
    on_event: OnEvent | None = None,
) -> Reconstruction:
    """Reconstruct ``m`` with the named method: :func:`prepare` then :func:`run`."""
    return run(prepare(m, method, settings, device, seed), cancel, on_event)


def _run_classical(
    request: Request, op: LinearOperator, cancel: Cancel, emit: OnEvent
) -> torch.Tensor:
    from napari_ddip.recon import Cancelled
    from napari_ddip.recon import Progress as ProgressEvent
    from napari_ddip.recon.engine import is_cancelled

    assert request.method.runner is not None
    start, name = time.perf_counter(), request.method.name

    def progress(step: int, total: int) -> None:
        if is_cancelled(cancel):
            raise Cancelled
        elapsed = time.perf_counter() - start
        eta = elapsed / step * (total - step) if step > 0 else None
        emit(ProgressEvent(step, total, elapsed, eta, name))

    y = torch.from_numpy(request.measurement.data).to(request.device)
    return request.method.runner(op, y, request.settings, progress)


def _run_diffusion(
    request: Request, op: LinearOperator, config: ReconConfig, cancel: Cancel, emit: OnEvent
) -> Finished:
    from napari_ddip.recon import Finished, reconstruct
    from napari_ddip.recon.adaptation import load_warm_start

    s = request.settings
    warm = load_warm_start(s["warm_start"], s["prior"]) if s.get("warm_start") else None
    m = request.measurement
    events = reconstruct(m.data, op, config, device=request.device, cancel=cancel, warm_start=warm)
    for event in events:
        if isinstance(event, Finished):
            return event
        emit(event)
    raise RuntimeError("the engine ended without a Finished event")


#: Keys of the engine's run facts that :func:`make_provenance` records itself.
_OWN_KEYS = ("method", "settings", "seed", "device", "seconds")


def make_provenance(
    request: Request, output: str, seconds: float, run_facts: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The JSON-ready provenance of a run of ``request``: software, version, method, its
    settings (a diffusion method's automatic ones as the engine resolved them), seed, device,
    seconds, time, ``output`` (``real`` or ``magnitude``), the measurement's own provenance,
    and the engine's facts about the run (prior, scale, samples, ``partial``, …)."""
    facts = dict(run_facts or {})
    resolved = facts.get("settings", {})
    settings = {key: resolved.get(key, value) for key, value in request.settings.items()}
    return {
        "software": "napari-ddip",
        "version": __version__,
        "method": request.method.name,
        "settings": settings,
        "seed": request.seed,
        "device": str(request.device),
        "seconds": seconds,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "output": output,
        "measurement": request.measurement.provenance,
    } | {key: value for key, value in facts.items() if key not in _OWN_KEYS}


def write_adaptation(path: str | Path, result: Reconstruction) -> Path:
    """Save the adaptation of ``result`` (a method that can save one) to ``path``
    (``.safetensors``), with the prior it was made on and the run's settings.

    Raises:
        InputError: no adaptation step ran.
    """
    from napari_ddip.recon.adaptation import prior_sha256, save_adaptation

    provenance = result.provenance
    if not result.adaptation:
        method = provenance["method"]
        raise InputError(f"{method} adapted nothing (no adaptation step ran): no file")
    prior = provenance["settings"]["prior"]
    info = {
        "prior": prior,
        "prior_sha256": prior_sha256(prior),
        "method": provenance["method"],
        "settings": provenance["settings"],
    }
    try:
        return save_adaptation(path, result.adaptation, info)
    except ValueError as exc:
        raise InputError(str(exc)) from None


@contextmanager
def progress_bar(desc: str, quiet: bool = False) -> Iterator[OnEvent]:
    """A tqdm bar on stderr driven by the events of :func:`run`: a diffusion run's estimate
    first (one line, :func:`~napari_ddip.run_time.estimate_text`, with advice where it is
    long), then the bar, which appears at the first step (so an error raised before any work
    is done prints alone) and says where the run is in words of its settings
    (:meth:`~napari_ddip.recon.Progress.describe`) and the time left, and a line where the
    adaptation ends at the measurement's noise (``quiet``: none of them)."""
    from napari_ddip.run_time import ended_text, estimate_text, format_seconds, is_long

    bars: list[tqdm] = []
    form = "{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"

    def on_event(event: Any) -> None:
        from napari_ddip.recon import Adapted, Started
        from napari_ddip.recon import Progress as ProgressEvent

        if isinstance(event, Adapted) and event.ended and not quiet:
            tqdm.write(f"{desc}: {ended_text(event)}", file=sys.stderr)

        if isinstance(event, Started) and event.estimate is not None and not quiet:
            line = f"{desc}: {estimate_text(event, METHODS[event.method].diffusion)}"
            if is_long(event.estimate):
                line += " (long: --preset preview gives a first look in about a minute)"
            print(line, file=sys.stderr, flush=True)
        if not isinstance(event, ProgressEvent):
            return
        if not bars:
            bars.append(
                tqdm(desc=desc, total=event.total, file=sys.stderr, disable=quiet, bar_format=form)
            )
        bars[0].total = event.total
        left = "" if event.eta is None else f" · {format_seconds(event.eta)} left"
        bars[0].set_postfix_str(event.describe() + left, refresh=False)
        bars[0].update(event.step - bars[0].n)

    try:
        yield on_event
    finally:
        for bar in bars:
            bar.close()


# -- the methods --------------------------------------------------------------------------


def _once(compute: Callable[[], torch.Tensor], progress: Progress) -> torch.Tensor:
    """Run a one-step computation and report it as done."""
    x = compute()
    progress(1, 1)
    return x


@torch.no_grad()
def _pinv(op: LinearOperator, y: torch.Tensor, s: dict[str, Any], progress: Progress):
    return _once(lambda: op.pinv(y), progress)


@torch.no_grad()
def _cg(op: LinearOperator, y: torch.Tensor, s: dict[str, Any], progress: Progress):
    return _once(
        lambda: classical.cg_least_squares(op, y, n_iter=s["iters"], damping=s["damping"]),
        progress,
    )


@torch.no_grad()
def _tv(op: LinearOperator, y: torch.Tensor, s: dict[str, Any], progress: Progress):
    def callback(iteration: int, total: int, _: torch.Tensor) -> None:
        progress(iteration, total)

    return classical.admm_tv(
        op,
        y,
        lam=s["lam"],
        rho=s["rho"],
        n_iter=s["iters"],
        n_cg=s["cg_iters"],
        callback=callback,
        noise_std=s["noise_std"],
    )


def _setting(default: Any, bound: Bound | None, help: str) -> Setting:
    """A classical method's setting (of its default's type; ``float`` where that is
    ``None``) with its one line of ``help``."""
    return Setting(default, float if default is None else type(default), bound, help=help)


register(Method("fbp", ("ct",), "filtered back-projection (filter from the geometry)", {}, _pinv))
register(Method("zero-filled", ("mri",), "zero-filled inverse FFT (SENSE-combined)", {}, _pinv))
register(
    Method(
        "cg",
        ("ct", "mri"),
        "least squares by conjugate gradients on the normal equations",
        {
            "iters": _setting(20, AT_LEAST_ONE, "CG iterations"),
            "damping": _setting(
                0.0, NON_NEGATIVE, "Tikhonov weight δ: minimises ‖Ax − y‖² + δ‖x‖²"
            ),
        },
        _cg,
    )
)
register(
    Method(
        "tv",
        ("ct", "mri"),
        "3D total variation by ADMM (lam from the noise level unless given)",
        {
            "iters": _setting(100, AT_LEAST_ONE, "ADMM iterations"),
            "cg_iters": _setting(5, AT_LEAST_ONE, "CG steps per ADMM iteration"),
            "lam": _setting(
                None, NON_NEGATIVE, "TV weight λ (auto: from the noise level and the intensities)"
            ),
            "rho": _setting(
                None,
                POSITIVE,
                "ADMM penalty ρ, dimensionless: the data term is divided by ‖A‖² (auto: 1e-3)",
            ),
            "noise_std": _setting(
                None,
                NON_NEGATIVE,
                "standard deviation of the measurement noise in its units, which sets the "
                "automatic lam (auto: estimated from a CT measurement)",
            ),
        },
        _tv,
    )
)


def _register_diffusion_methods() -> None:
    """One :class:`Method` per record of :data:`DIFFUSION_METHODS`, with the settings its
    record implies (and ``warm_start`` where it can warm-start)."""
    for spec in DIFFUSION_METHODS.values():
        settings = method_settings(spec)
        if spec.can_warm_start:
            settings["warm_start"] = WARM_START
        register(Method(spec.name, ("ct", "mri"), spec.summary, settings, diffusion=spec))


_register_diffusion_methods()
