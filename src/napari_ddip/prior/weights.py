"""Saving and loading priors: safetensors weights + a readable JSON config + a model card.

A prior named ``NAME`` is three files side by side: ``NAME.safetensors`` (tensors only, no
pickle), ``NAME.json`` (``PriorConfig`` plus the SHA-256 of the weights and training facts) and
``NAME.md`` (the model card). Shipped priors live in ``napari_ddip/weights/`` and load offline.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch

from napari_ddip.prior.denoiser import DENOISER_NETWORKS, DenoiserPrior, DenoiserPriorConfig
from napari_ddip.prior.model import DiffusionPrior, PriorConfig

#: What :func:`load_prior` returns: a diffusion prior, or a denoiser used as one.
Prior = DiffusionPrior | DenoiserPrior

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "weights"
DEFAULT_PRIOR = "ellipse-patch-v"


class PriorLoadError(ValueError):
    """A prior could not be loaded: missing, corrupted or not matching its config."""


def shipped_priors() -> list[str]:
    """Names of the priors that ship inside the package."""
    return sorted(p.stem for p in SHIPPED_DIR.glob("*.safetensors"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve_prior_path(name_or_path: str | Path) -> Path:
    """The ``.safetensors`` path of a shipped prior name or of a user file/stem."""
    text = str(name_or_path)
    if text == "default":
        text = DEFAULT_PRIOR
    shipped = SHIPPED_DIR / f"{text}.safetensors"
    if shipped.is_file():
        return shipped
    path = Path(text).expanduser()
    if path.suffix not in (".safetensors", ".json") and path.is_file():
        raise PriorLoadError(
            f"{path} is not a prior: a prior is a NAME.safetensors file with its NAME.json "
            "config beside it"
        )
    if path.suffix != ".safetensors":
        path = (
            path.with_suffix(".safetensors")
            if path.suffix == ".json"
            else Path(f"{path}.safetensors")
        )
    if not path.is_file():
        raise PriorLoadError(
            f"prior {name_or_path!r} not found: give a shipped name "
            f"({', '.join(shipped_priors()) or 'none shipped'}) or a path to NAME.safetensors"
        )
    return path


def save_prior(
    prior: Prior, path: str | Path, info: dict | None = None, card: str | None = None
) -> Path:
    """Write ``path`` (``.safetensors``) with its ``.json`` config and optional ``.md`` card.

    ``info`` (training facts: steps, data, hardware, wall time, command, scores) is stored in
    the JSON next to the config. Returns the weights path.
    """
    from safetensors.torch import save_file

    path = Path(path).with_suffix(".safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in prior.net.state_dict().items()}
    save_file(tensors, str(path), metadata={"format": "napari-ddip-prior"})
    meta = {"config": prior.config.to_dict(), "sha256": _sha256(path), "info": info or {}}
    path.with_suffix(".json").write_text(json.dumps(meta, indent=2) + "\n")
    if card is not None:
        path.with_suffix(".md").write_text(card)
    return path


def read_prior_meta(name_or_path: str | Path) -> dict:
    """The JSON metadata (config, sha256, info) of a prior."""
    path = resolve_prior_path(name_or_path)
    meta_path = path.with_suffix(".json")
    try:
        return json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise PriorLoadError(f"{meta_path} is missing: a prior needs its JSON config") from None
    except json.JSONDecodeError as exc:
        raise PriorLoadError(f"{meta_path} is not valid JSON ({exc})") from None


def _empty_prior(config: dict) -> Prior:
    """The untrained prior that the JSON ``config`` describes: a denoiser prior if it names
    a denoiser ``network``, else a diffusion prior."""
    if config.get("network") in DENOISER_NETWORKS:
        return DenoiserPrior(DenoiserPriorConfig.from_dict(config))
    return DiffusionPrior(PriorConfig.from_dict(config))


def load_prior(name_or_path: str | Path = "default", device: torch.device | str = "cpu") -> Prior:
    """Load a prior (shipped name or path), check its integrity, put it in eval mode."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = resolve_prior_path(name_or_path)
    meta = read_prior_meta(path)
    expected = meta.get("sha256")
    if expected and _sha256(path) != expected:
        raise PriorLoadError(
            f"{path} does not match the checksum in {path.with_suffix('.json').name}: "
            "the file is corrupted or was replaced; re-copy or retrain it"
        )
    try:
        prior = _empty_prior(meta["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise PriorLoadError(f"{path.with_suffix('.json')} has an invalid config ({exc})") from None
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as exc:
        raise PriorLoadError(f"{path} is not a readable safetensors file ({exc})") from None
    try:
        prior.net.load_state_dict(tensors, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise PriorLoadError(f"{path} does not match its config: {first}") from None
    return prior.to(device).eval().requires_grad_(False)
