"""Wall time, peak memory and network share of DDIP vs D3IP as the slice count grows.

Each (method, slices) run happens in a fresh subprocess so that its peak memory is its own
(peak resident set size on the CPU, ``torch.cuda.max_memory_allocated`` on a GPU). The network
share is the time spent inside the UNet (forward and backward, measured with module hooks; the
input is made to require grad during adaptation so that the backward hook brackets the
network's whole backward pass; on a GPU the time of its kernels, from CUDA events, which do
not synchronise) over the run's wall time; the rest is operators, CG, sampling
and bookkeeping. The volume is an ellipsoid phantom measured with 60-view CT; the paper's cost
model predicts a DDIP/D3IP time ratio of ``(L·N + N) / (L·K + N)`` network passes per step
(N slices, L steps, K slices), with every step of the horizon adapted (``discrepancy`` 0).

    python benchmarks/speed_memory.py --size 64 --slices 16 64 --nfe 10 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import torch


class NetworkTimer:
    """Time spent inside the network, between :meth:`begin` and :meth:`end` marks.

    On the CPU the host clock; on a GPU CUDA events recorded in the stream, so that timing
    never makes the host wait for the GPU (a synchronisation at every mark would serialise the
    host's work, e.g. drawing the next step's noise, with the GPU's, and inflate the wall time
    this benchmark reports).
    """

    def __init__(self, device: torch.device) -> None:
        self.cuda = device.type == "cuda"
        self.open: list = []
        self.closed: list = []
        self.host_seconds = 0.0

    def _mark(self):
        if not self.cuda:
            return time.perf_counter()
        event = torch.cuda.Event(enable_timing=True)
        event.record()
        return event

    def begin(self) -> None:
        self.open.append(self._mark())

    def end(self) -> None:
        start, stop = self.open.pop(), self._mark()
        if self.cuda:
            self.closed.append((start, stop))
        else:
            self.host_seconds += stop - start

    def seconds(self) -> float:
        """The total of the closed intervals (on a GPU, after waiting for the recorded events)."""
        if not self.cuda:
            return self.host_seconds
        torch.cuda.synchronize()
        return sum(a.elapsed_time(b) for a, b in self.closed) / 1000


def run_one(
    method: str,
    n_slices: int,
    size: int,
    nfe: int,
    device: str,
    prior: str,
    overrides: dict[str, str],
) -> dict:
    """One timed reconstruction in this process; returns its measurements. ``overrides``:
    diffusion settings as ``--set`` gives them (e.g. ``precision``, ``slice_batch``)."""
    from napari_ddip.io import Measurement
    from napari_ddip.methods import get_method, prepare
    from napari_ddip.metrics import score
    from napari_ddip.physics.ct import ParallelBeamCT
    from napari_ddip.prior.phantoms import ellipsoid_volume
    from napari_ddip.prior.weights import load_prior
    from napari_ddip.recon import reconstruct, run_to_end

    dev = torch.device(device)
    loaded = load_prior(prior)
    timer = NetworkTimer(dev)

    def begin_forward(
        _: object, args: tuple[torch.Tensor, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor] | None:
        timer.begin()
        x, t = args
        if torch.is_grad_enabled() and not x.requires_grad:
            # A full backward hook only fires once the gradient w.r.t. the module's input is
            # computed; without an input that requires grad it would time an empty backward.
            return x.detach().requires_grad_(True), t
        return None

    net = loaded.net
    net.register_forward_pre_hook(begin_forward)
    net.register_forward_hook(lambda *_: timer.end())
    net.register_full_backward_pre_hook(lambda *_: timer.begin())
    net.register_full_backward_hook(lambda *_: timer.end())
    volume = torch.from_numpy(ellipsoid_volume((n_slices, size, size), seed=0))
    op = ParallelBeamCT(size, n_views=60)
    y = op.forward(volume)
    given = {"nfe": str(nfe), "preview_every": "0", **overrides}
    if "discrepancy" in get_method(method, "ct").settings:
        # Every step of the horizon adapts (no discrepancy stop): the cost model's L and K.
        given = {"discrepancy": "0"} | given
    m = Measurement("ct", y.numpy(), op.geometry())
    cfg = prepare(m, method, given).config  # the network timer needs the engine's own events
    start = time.perf_counter()
    result = run_to_end(reconstruct(y, op, cfg, prior=loaded, device=dev))
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    wall = time.perf_counter() - start
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev) / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "method": method,
        "slices": n_slices,
        "size": size,
        "nfe": nfe,
        "device": str(dev),
        "seconds": wall,
        "network_share": timer.seconds() / wall,
        "peak_mib": peak,
        "psnr": score(result.volume, volume.numpy()).psnr,
        "lora_parameters": result.metadata["lora_parameters"],
        "L": result.metadata["settings"]["adapt_steps"],
        "K": result.metadata["settings"]["k_slices"],
        "settings": overrides,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["ddip", "d3ip"])
    parser.add_argument("--slices", nargs="+", type=int, default=[16, 64, 256])
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--nfe", type=int, default=50)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--prior", default="default")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--tag", default="", help="suffix of the JSON file name")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="diffusion setting"
    )
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        method, n = args.methods[0], args.slices[0]
        from napari_ddip.methods import parse_settings

        overrides = parse_settings(args.set)
        row = run_one(method, n, args.size, args.nfe, args.device, args.prior, overrides)
        print(json.dumps(row))
        return
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"speed_{args.device.replace(':', '')}_{args.size}{args.tag}.json"
    rows = []
    print("| method | slices | seconds | network share | peak MiB | PSNR (dB) |")
    print("|---|---|---|---|---|---|")
    for n in args.slices:
        for method in args.methods:
            command = [sys.executable, __file__, "--one", "--methods", method, "--slices", str(n)]
            command += ["--size", str(args.size), "--nfe", str(args.nfe)]
            command += ["--device", args.device, "--prior", args.prior]
            command += [f"--set={pair}" for pair in args.set]
            child = subprocess.run(command, capture_output=True, text=True)
            if child.returncode:
                sys.exit(f"{method} at {n} slices failed:\n{child.stderr[-3000:]}")
            row = json.loads(child.stdout.strip().splitlines()[-1])
            rows.append(row)
            print(
                f"| {method} | {n} | {row['seconds']:.1f} | {row['network_share']:.0%} "
                f"| {row['peak_mib']:.0f} | {row['psnr']:.2f} |",
                flush=True,
            )
            path.write_text(json.dumps(rows, indent=2))  # after every row: runs take hours
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
