"""What a trained prior records about itself: the facts of its run (``info`` in its
``.json``) and the Markdown model card made from them."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import torch

from napari_ddip.prior.train.config import TrainConfig
from napari_ddip.prior.weights import Prior, read_prior_meta


def training_info(
    cfg: TrainConfig,
    prior: Prior,
    fine_tuning_images: int | None,
    init: str | Path | None,
    steps: int,
    device: torch.device,
    precision: str,
    wall_seconds: float,
    command: str | None,
) -> dict:
    """The facts of a run that wrote ``prior`` after ``steps`` steps: its data (phantoms, or
    ``fine_tuning_images`` user images), the prior it started from, its configuration (without
    the UNet options when it started from a prior, whose network it keeps),
    hardware, precision, time, command line (default: this process's), commit, torch version,
    parameter count, the base prior's licence (weights derived from it carry it) and
    ``cfg.extra``."""
    if fine_tuning_images is None:
        data = phantom_description(cfg.ellipses)
    else:
        data = f"{fine_tuning_images} user images"
    train_config = {k: v for k, v in asdict(cfg).items() if k != "extra"}
    if init:  # the network is the base prior's, whatever the UNet options say
        for key in ("base_channels", "channel_mults"):
            del train_config[key]
    return {
        "data": data,
        "init": str(init) if init else None,
        "steps": steps,
        "train_config": train_config,
        "hardware": _hardware(device),
        "precision": precision,
        "wall_seconds": round(wall_seconds, 1),
        "command": command or " ".join(sys.argv),
        "commit": _git_commit(),
        "torch": torch.__version__,
        "parameters": sum(p.numel() for p in prior.net.parameters()),
        **_base_licence(init),
        **cfg.extra,
    }


def _base_licence(init: str | Path | None) -> dict:
    """``{"licence": …}`` naming the base prior ``init`` when it records a licence, else
    ``{}``."""
    licence = None if init is None else read_prior_meta(init).get("info", {}).get("licence")
    return {"licence": f"{licence}, as the base prior `{init}`"} if licence else {}


def phantom_description(ellipses: int) -> str:
    """The model card's data line for training on phantoms with ``ellipses`` ellipses."""
    if ellipses == TrainConfig.ellipses:
        return "random ellipse phantoms (docs/architecture.md, 'Training data')"
    count = f"min(Poisson({ellipses}), {ellipses})"
    return f"random ellipse phantoms (docs/architecture.md, 'Training data', with {count} ellipses)"


def model_card(name: str, info: dict) -> str:
    """Markdown model card from training facts (and scores, when ``info['scores']`` exists)."""
    lines = [
        f"# Prior `{name}`",
        "",
        f"- Data: {info['data']}"
        + (f", fine-tuned from `{info['init']}`" if info.get("init") else ""),
        *([f"- Licence: {info['licence']}"] if info.get("licence") else []),
        f"- Parameters: {info['parameters']:,}",
        f"- Steps: {info['steps']}",
        f"- Hardware: {info['hardware']}"
        + (f", network passes in {info['precision']}" if "precision" in info else ""),
        f"- Wall time: {info['wall_seconds'] / 60:.1f} min",
        f"- Command: `{info['command']}`",
        f"- Commit: {info['commit']}, torch {info['torch']}",
        "",
        "## Training configuration",
        "",
        "```json",
        json.dumps(info["train_config"], indent=2),
        "```",
    ]
    for key in ("scores", "cost"):
        if key in info:
            lines += [
                "",
                f"## {key.title()}",
                "",
                "```json",
                json.dumps(info[key], indent=2),
                "```",
            ]
    return "\n".join(lines) + "\n"


def _git_commit() -> str:
    """The package's short commit, where it runs from a git checkout; else ``unknown``."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _hardware(device: torch.device) -> str:
    """The GPU's name, or the CPU's with the threads torch uses."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{_cpu_name()} CPU, {torch.get_num_threads()} threads"


def _cpu_name() -> str:
    """The CPU's model name where Linux tells it, else the platform's processor string."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
