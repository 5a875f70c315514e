"""Command line ``napari-ddip``: simulate, reconstruct, evaluate, demo, train-prior, finetune-prior.

Every subcommand reads and writes files through :mod:`napari_ddip.io`. Bad input (missing or
malformed files, wrong shapes or dtypes, NaN/Inf, missing geometry, an existing output without
``--overwrite``) prints one ``napari-ddip: error: ...`` line on stderr and returns 2.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from napari_ddip import __version__
from napari_ddip.io import (
    InputError,
    InputWarning,
    check_measurement_path,
    check_result_path,
    load_measurement,
    read_volume,
    require_new_output,
    save_measurement,
    tagged_path,
    write_result,
)
from napari_ddip.methods import (
    METHODS,
    Method,
    Reconstruction,
    methods_that,
    parse_settings,
    prepare,
    progress_bar,
    run,
    write_adaptation,
)
from napari_ddip.presets import DEFAULT_PRESET, PRESETS, apply_preset
from napari_ddip.settings_doc import settings_epilog
from napari_ddip.simulate import simulate_ct, simulate_mri

if TYPE_CHECKING:
    from napari_ddip.prior.train import TrainConfig

PROG = "napari-ddip"
MAX_SEED = 2**63 - 1  # torch and numpy both take seeds up to here


def seed_value(text: str) -> int:
    """A ``--seed`` (argparse type): an integer in ``0 … 2⁶³−1``."""
    seed = int(text)
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"a seed is an integer from 0 to {MAX_SEED}")
    return seed


def _not_the_input(out: Path, source: Path) -> None:
    """Refuse to write a result over the file it is made from."""
    if out.exists() and source.exists() and out.resolve() == source.resolve():
        raise InputError(f"{out}: is the input file; write the output elsewhere")


METHOD_HELP = """methods (settings with defaults, change with --set KEY=VALUE):
{methods}"""


def _simulate(args: argparse.Namespace) -> int:
    ct_only = {"views": args.views, "limited_angle": args.limited_angle, "photons": args.photons}
    mri_only = {"accel": args.accel, "mask": args.mask, "coils": args.coils}
    wrong = ct_only if args.modality == "mri" else mri_only
    given = [f"--{k.replace('_', '-')}" for k, v in wrong.items() if v is not None]
    if args.drop_maps and args.modality == "ct":
        given.append("--drop-maps")
    if given:
        raise InputError(f"{', '.join(given)}: not an option for {args.modality} simulation")
    check_measurement_path(args.out, args.modality, args.overwrite)
    _not_the_input(args.out, args.volume)
    volume = read_volume(args.volume)
    common = {"noise": args.noise, "seed": args.seed, "voxel_size": volume.voxel_size}
    if args.modality == "ct":
        options = {"n_views": args.views, "angular_range": args.limited_angle}
        m = simulate_ct(volume.data, photons=args.photons, **_given(options), **common)
    else:
        options = {"accel": args.accel, "mask": args.mask, "coils": args.coils}
        m = simulate_mri(volume.data, keep_maps=not args.drop_maps, **_given(options), **common)
    m.provenance["source"] = str(args.volume)
    save_measurement(args.out, m, overwrite=args.overwrite)
    print(f"wrote {args.modality} measurement {m.data.shape} {m.data.dtype} to {args.out}")
    return 0


def _given(options: dict[str, object]) -> dict[str, object]:
    """The options the user gave (not None); the others keep the simulator's defaults."""
    return {k: v for k, v in options.items() if v is not None}


def _reconstruct(args: argparse.Namespace) -> int:
    from napari_ddip.prior.weights import PriorLoadError

    world = int(os.environ.get("WORLD_SIZE", "1") or "1")
    if world > 1 and not args.distributed:  # each would reconstruct everything and write OUT
        raise InputError(
            f"started as one of {world} processes (torchrun): add --distributed to share the "
            "work, or run a single process"
        )
    out = check_result_path(args.out, args.overwrite)
    _not_the_input(out, args.measurement)
    method = METHODS[args.method]  # one of the parser's choices
    overrides = _method_options(args, method)
    m = load_measurement(args.measurement, rows=args.rows, centre=args.center)
    settings = apply_preset(args.preset, method, m.kind, overrides)
    request = prepare(m, args.method, settings, args.device, args.seed)
    std_path = tagged_path(out, "_std")
    if request.settings.get("samples", 1) > 1:
        check_result_path(std_path, args.overwrite)
    rank = 0
    if args.distributed:
        from napari_ddip.recon.distributed import init_from_environment

        try:
            group, dev = init_from_environment(args.device)
        except ValueError as exc:
            raise InputError(str(exc)) from None
        request, rank = replace(request, device=dev), group.rank
    try:
        with progress_bar(args.method, quiet=args.quiet or rank > 0) as on_event:
            result = run(request, on_event=on_event)
    except PriorLoadError as exc:
        raise InputError(str(exc)) from None
    if args.distributed:
        from napari_ddip.recon.distributed import leave_process_group

        leave_process_group()
    if rank == 0:  # every rank holds the volume; rank 0 writes it
        _write_reconstruction(args, out, std_path, m.voxel_size, result)
    return 0


def _method_options(args: argparse.Namespace, method: Method) -> dict[str, str]:
    """The ``--set`` settings with ``--samples`` and ``--warm-start``; refuses an option the
    method does not take (before any work)."""
    overrides = parse_settings(args.set)
    extra_options = {"samples": args.samples != 1, "warm_start": args.warm_start is not None}
    if extra_options["warm_start"] and not method.can_warm_start:
        raise InputError(
            f"--warm-start: {method.name} cannot start from a saved adaptation (methods that "
            f"can: {', '.join(methods_that('can_warm_start'))})"
        )
    for option, given in extra_options.items():
        if given and option not in method.defaults:
            raise InputError(f"--{option.replace('_', '-')}: not an option of {method.name}")
        if given:
            overrides[option] = str(getattr(args, option))
    if args.save_adaptation is not None:
        require_new_output(args.save_adaptation, args.overwrite)
        if args.save_adaptation.suffix != ".safetensors":
            raise InputError(f"--save-adaptation {args.save_adaptation}: use a .safetensors name")
        if not method.can_save_adaptation:
            raise InputError(
                f"--save-adaptation: {method.name} adapts no shared LoRA to save (methods that "
                f"do: {', '.join(methods_that('can_save_adaptation'))})"
            )
    return overrides


def _write_reconstruction(
    args: argparse.Namespace,
    out: Path,
    std_path: Path,
    voxel_size: tuple[float, float, float],
    result: Reconstruction,
) -> None:
    """Write the volume, its std (several samples) and the adaptation (``--save-adaptation``)."""
    provenance = result.provenance | {"measurement_file": str(args.measurement)}
    write_result(out, result.volume, voxel_size, provenance, overwrite=args.overwrite)
    print(f"wrote {args.method} reconstruction {result.volume.shape} to {out}")
    if result.std is not None:
        std_info = provenance | {"output": "posterior standard deviation"}
        write_result(std_path, result.std, voxel_size, std_info, overwrite=args.overwrite)
        samples = provenance["settings"]["samples"]
        print(f"wrote the per-voxel standard deviation of {samples} samples to {std_path}")
    if args.save_adaptation is not None:
        write_adaptation(args.save_adaptation, result)
        print(f"wrote the adaptation to {args.save_adaptation}")


def _evaluate(args: argparse.Namespace) -> int:
    from napari_ddip.metrics import score  # scikit-image/scipy.stats: imported when used

    recon, reference = read_volume(args.recon).data, read_volume(args.reference).data
    if recon.shape != reference.shape:
        raise InputError(f"shapes differ: recon {recon.shape} vs reference {reference.shape}")
    try:
        scores = score(recon, reference)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if args.json:
        print(
            json.dumps(
                {"recon": str(args.recon), "reference": str(args.reference)} | scores.as_dict()
            )
        )
    else:
        slices = f"{scores.n_slices} slice" + ("s" if scores.n_slices != 1 else "")
        print(f"PSNR {scores.psnr:.2f} dB  SSIM {scores.ssim:.4f}  ({slices})")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from napari_ddip.demo import run_demo  # matplotlib: imported when used

    run_demo(args.out, overwrite=args.overwrite, device=args.device, seed=args.seed)
    return 0


def _train(args: argparse.Namespace, finetune: bool) -> int:
    """Train a prior from scratch or fine-tune one on image files, with a progress bar."""
    from tqdm import tqdm

    from napari_ddip.prior.train import TrainingOutputError, images_from_arrays, train_prior

    try:
        cfg = config_from_args(args, finetune=finetune)
        images = None
        if finetune:
            names = [str(path) for path in args.images]
            images = images_from_arrays(_fine_tuning_volumes(args.images), names)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    bar = tqdm(desc=cfg.name, total=cfg.steps, unit="step", file=sys.stderr, disable=args.quiet)

    trained = []

    def progress(step: int, total: int, loss: float) -> None:
        trained.append(step)
        bar.update(step - bar.n)
        bar.set_postfix(loss=f"{loss:.4f}")

    command = shlex.join([PROG, *args.argv])
    try:
        path = train_prior(
            cfg,
            args.out,
            device=args.device,
            images=images,
            init=args.prior if finetune else args.init,
            progress=progress,
            command=command,
            overwrite=args.overwrite,
        )
    except TrainingOutputError as exc:
        raise InputError(f"{exc} with --overwrite") from None
    except ValueError as exc:  # a device, prior or setting that train_prior refuses up front
        raise InputError(str(exc)) from None
    finally:
        bar.close()
    if trained:
        print(f"wrote prior {path}")
    else:
        print(f"{path} is already trained to --steps {cfg.steps}: nothing to do (more steps go on)")
    return 0


def _fine_tuning_volumes(paths: Sequence[Path]) -> list[np.ndarray]:
    """The volumes ``(Z, Y, X)`` of the ``finetune-prior`` images; InputError for a file
    given twice (its images would silently count twice)."""
    volumes: list[np.ndarray] = []
    seen: dict[Path, Path] = {}
    for path in paths:
        first = seen.get(path.resolve())
        if first is not None:
            also = "" if first == path else f" (also as {first})"
            raise InputError(f"{path}: given twice{also}; give each file once")
        seen[path.resolve()] = path
        volumes.append(read_volume(path).data)
    return volumes


def add_train_arguments(parser: argparse.ArgumentParser, finetune: bool = False) -> None:
    """The options of ``finetune-prior`` (``finetune``) or ``train-prior``: the settings of
    :func:`~napari_ddip.prior.train.train_options` with their defaults and help, and where
    the run goes and on what."""
    from napari_ddip.prior.train import train_options

    parser.add_argument("--out", required=True, help="output folder (checkpoints, log, weights)")
    for option in train_options(finetune):
        default, text = option.default, option.help
        if isinstance(default, bool):
            parser.add_argument(option.flag, action="store_true", help=text)
        elif isinstance(default, tuple):
            parser.add_argument(option.flag, default=",".join(map(str, default)), help=text)
        elif default is None:  # left to the base prior
            parser.add_argument(
                option.flag, type=_float_or_auto, default=None, metavar="RATE|auto", help=text
            )
        else:
            parser.add_argument(
                option.flag, type=type(default), default=default, choices=option.choices, help=text
            )
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh, replacing a checkpoint of another run in --out or finished weights "
        "of the same --name (without it, those stop the command; a checkpoint of the same "
        "run is resumed)",
    )
    if finetune:
        parser.add_argument(
            "--prior",
            default="default",
            help="prior to start from (default: the ellipse diffusion prior ellipse-patch-v)",
        )
    else:
        parser.add_argument(
            "--init",
            default=None,
            help="continue from this prior (name or .safetensors) instead of a random network; "
            "its architecture, prediction, data scale and image size are kept",
        )


def _comma_list(text: str, kind: type, option: str) -> tuple:
    """The values of the comma list ``text`` of option ``option``, each made a ``kind``
    (``int`` or ``float``); ValueError, naming the option, for one that is not."""
    try:
        return tuple(kind(v) for v in text.split(","))
    except ValueError:
        what = "integers" if kind is int else "numbers"
        raise ValueError(f"{option} must be a comma list of {what}, got {text!r}") from None


def _float_or_auto(text: str) -> float | None:
    """An option's number, or None for ``auto``."""
    return None if text == "auto" else float(text)


def config_from_args(args: argparse.Namespace, finetune: bool = False) -> TrainConfig:
    """The :class:`~napari_ddip.prior.train.TrainConfig` of parsed
    :func:`add_train_arguments` options; ValueError, naming the option, for a value that
    cannot train (:func:`~napari_ddip.prior.train.check_config`)."""
    from napari_ddip.prior.train import TrainConfig, check_config, finetune_config, train_options

    values = {}
    for option in train_options(finetune):
        value = getattr(args, option.name)
        if isinstance(option.default, tuple):
            value = _comma_list(value, type(option.default[0]), option.flag)
        values[option.name] = value
    cfg = finetune_config(**values) if finetune else TrainConfig(**values)
    check_config(cfg, phantoms=not finetune)
    return cfg


def _methods_epilog() -> str:
    """Each method with the settings it takes; those every diffusion method takes once."""
    diffusion = [m for m in METHODS.values() if m.diffusion is not None]
    common = [k for k in diffusion[0].defaults if all(k in m.defaults for m in diffusion)]
    lines = []
    for m in METHODS.values():
        own = {k: v for k, v in m.defaults.items() if m.diffusion is None or k not in common}
        settings = ", ".join(f"{k}={'auto' if v is None else v}" for k, v in own.items())
        if m.diffusion is not None:
            settings = "diffusion settings" + (f", {settings}" if settings else "")
        lines.append(
            f"  {m.name:<12} [{'/'.join(m.kinds)}] {m.summary}"
            + (f"; {settings}" if settings else "")
        )
    shared = ", ".join(
        f"{k}={'auto' if v is None else v}" for k, v in diffusion[0].defaults.items() if k in common
    )
    lines.append(f"  diffusion settings: {shared}")
    return METHOD_HELP.format(methods="\n".join(lines))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (method choices come from :data:`napari_ddip.methods.METHODS`,
    training options from :func:`napari_ddip.prior.train.train_options`)."""

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="3D CT/MRI reconstruction from undersampled measurements.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_simulate_parser(sub)
    _add_reconstruct_parser(sub)
    _add_evaluate_parser(sub)
    _add_demo_parser(sub)
    _add_training_parsers(sub)
    return parser


def _add_simulate_parser(sub: argparse._SubParsersAction) -> None:
    """The ``simulate`` command."""
    sim = sub.add_parser("simulate", help="volume file -> simulated measurement file")
    sim.add_argument("modality", choices=("ct", "mri"))
    sim.add_argument(
        "volume",
        type=Path,
        help="volume (.tif/.tiff/.npy/.npz/.nii/.nii.gz, DICOM folder or file), (Z, Y, X)",
    )
    sim.add_argument("out", type=Path, help="measurement file (.npz; CT also .tif/.tiff)")
    sim.add_argument(
        "--noise", type=float, default=0.0, help="relative Gaussian noise (0.01 = 1%%)"
    )
    sim.add_argument("--seed", type=seed_value, default=0, help="mask and noise seed (default 0)")
    sim.add_argument("--views", type=int, help="CT: number of views (default 60)")
    sim.add_argument(
        "--limited-angle", type=float, metavar="DEG", help="CT: angular range (default 180)"
    )
    sim.add_argument(
        "--photons", type=float, metavar="I0", help="CT: Poisson noise, photons per bin"
    )
    sim.add_argument("--accel", type=float, help="MRI: acceleration (default 4)")
    sim.add_argument("--mask", choices=("poisson", "uniform1d"), help="MRI: mask (default poisson)")
    sim.add_argument("--coils", type=int, help="MRI: number of simulated coils (default 1)")
    sim.add_argument(
        "--drop-maps",
        action="store_true",
        help="MRI: do not store coil maps (ESPIRiT estimates them)",
    )
    sim.add_argument("--overwrite", action="store_true", help="replace an existing output")
    sim.set_defaults(func=_simulate)


def _add_reconstruct_parser(sub: argparse._SubParsersAction) -> None:
    """The ``reconstruct`` command (methods and settings from :data:`METHODS`)."""
    rec = sub.add_parser(
        "reconstruct",
        help="measurement file -> volume (TIFF or NIfTI)",
        epilog=_methods_epilog() + "\n\n" + settings_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    rec.add_argument(
        "measurement",
        type=Path,
        help="measurement file (.npz, CT .tif/.tiff; .h5: fastMRI k-space, Data Exchange "
        "projections, ISMRMRD raw data)",
    )
    rec.add_argument("out", type=Path, help="result volume (.tif/.tiff or .nii/.nii.gz, float32)")
    rec.add_argument("--method", required=True, choices=list(METHODS), help="reconstruction method")
    rec.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="method setting (repeatable)",
    )
    rec.add_argument(
        "--preset",
        choices=list(PRESETS),
        default=DEFAULT_PRESET,
        help="diffusion settings to start from, --set values win: "
        + "; ".join(f"{p.name}: {p.summary}" for p in PRESETS.values())
        + f" (default {DEFAULT_PRESET})",
    )
    rec.add_argument("--device", default="cpu", help="torch device (default cpu)")
    rec.add_argument("--seed", type=seed_value, default=0, help="random seed (default 0)")
    rec.add_argument(
        "--samples",
        type=int,
        default=1,
        help="posterior samples: mean to OUT, std beside it (OUT_std)",
    )
    rec.add_argument(
        "--save-adaptation", type=Path, metavar="FILE", help="D3IP: save the adapted LoRA"
    )
    rec.add_argument(
        "--warm-start", type=Path, metavar="FILE", help="D3IP: start from a saved adaptation"
    )
    rec.add_argument(
        "--distributed",
        action="store_true",
        help="under torchrun: split the slices over the processes (rank 0 writes)",
    )
    rec.add_argument(
        "--rows", metavar="START:STOP", help="Data Exchange: read only these detector rows (slices)"
    )
    rec.add_argument(
        "--center",
        type=float,
        metavar="COLUMN",
        help="Data Exchange: rotation centre in detector columns (default: estimated)",
    )
    rec.add_argument("--quiet", action="store_true", help="no progress bar")
    rec.add_argument("--overwrite", action="store_true", help="replace an existing output")
    rec.set_defaults(func=_reconstruct)


def _add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    """The ``evaluate`` command."""
    ev = sub.add_parser("evaluate", help="PSNR/SSIM of a volume against a reference")
    ev.add_argument("recon", type=Path, help="reconstructed volume")
    ev.add_argument(
        "--reference",
        type=Path,
        required=True,
        help="reference volume, same shape (also a DICOM folder)",
    )
    ev.add_argument("--json", action="store_true", help="print one JSON object")
    ev.set_defaults(func=_evaluate)


def _add_demo_parser(sub: argparse._SubParsersAction) -> None:
    """The ``demo`` command."""
    demo = sub.add_parser("demo", help="the main job on built-in sample data")
    demo.add_argument("--out", type=Path, default=Path("napari-ddip-demo"), help="output folder")
    demo.add_argument("--device", default="cpu", help="torch device (default cpu)")
    demo.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    demo.add_argument(
        "--seed", type=int, default=0, help="phantom, noise and sampler seed (default 0)"
    )
    demo.set_defaults(func=_demo)


def _add_training_parsers(sub: argparse._SubParsersAction) -> None:
    """The ``train-prior`` and ``finetune-prior`` commands (options from
    :func:`add_train_arguments`)."""
    train = sub.add_parser("train-prior", help="train a diffusion prior on ellipse phantoms")
    add_train_arguments(train)
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(func=lambda args: _train(args, finetune=False))

    tune = sub.add_parser("finetune-prior", help="fine-tune a prior on a few images")
    tune.add_argument(
        "images", type=Path, nargs="+", help="2D images or 3D volumes (.tif/.npy/.npz/.nii[.gz])"
    )
    add_train_arguments(tune, finetune=True)
    tune.add_argument("--quiet", action="store_true", help="no progress bar")
    tune.set_defaults(func=lambda args: _train(args, finetune=True))


def _one_line_warnings(default: Callable[..., None]) -> Callable[..., None]:
    """A ``warnings.showwarning`` that prints an :class:`InputWarning`, and any warning raised
    by this package's own code (``precision=bf16`` on a CPU without bfloat16, say), as one
    ``napari-ddip: warning: ...`` line and leaves other warnings to ``default``."""
    package = Path(__file__).resolve().parent

    def show(
        message: Warning | str, category: type[Warning], filename: str, *args: Any, **kwargs: Any
    ) -> None:
        if issubclass(category, InputWarning) or Path(filename).resolve().is_relative_to(package):
            print(f"{PROG}: warning: {message}", file=sys.stderr)
        else:
            default(message, category, filename, *args, **kwargs)

    return show


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for bad input, 1 when the file system
    refuses a read or write)."""

    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse has printed usage and the error (or --help)
        return int(exc.code or 0)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warnings(warnings.showwarning)
            return args.func(args)
    except InputError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file system refusing a read or write (permissions, full disk)
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
