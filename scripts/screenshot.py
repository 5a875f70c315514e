"""Screenshot of the napari workflow for the README: the CT sample, the Reconstruct widget and
its result side by side.

Run it with a display, or under Xvfb::

    xvfb-run -a .venv/bin/python scripts/screenshot.py --out docs/screenshot.png
    xvfb-run -a .venv/bin/python scripts/screenshot.py --method d3ip --nfe 20 \
        --out docs/screenshot.png

It opens the *CT ellipsoid phantom* sample, docks *Reconstruct*, runs ``--method`` (default
``tv``, which needs no prior; a diffusion method uses ``--prior``, by default the shipped
one), waits for the result and saves ``viewer.screenshot(canvas_only=False)``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

#: Window size of the screenshot (pixels).
WINDOW = (1600, 820)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/screenshot.png"), help="PNG file")
    parser.add_argument("--method", default="tv", help="reconstruction method (default tv)")
    parser.add_argument("--prior", help="diffusion methods: shipped name or .safetensors path")
    parser.add_argument("--nfe", type=int, help="diffusion: sampling steps")
    parser.add_argument("--adapt-steps", type=int, help="diffusion: L adaptation steps")
    parser.add_argument("--k-slices", type=int, help="diffusion: K slices per step")
    parser.add_argument("--slice-batch", type=int, help="diffusion: slices per sampling batch")
    parser.add_argument("--iters", type=int, help="tv / cg: iterations")
    parser.add_argument("--slices", default="all", help="all, k or start:stop (default all)")
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda:N")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds to wait (3600)")
    return parser.parse_args(argv)


def configure(widget, args: argparse.Namespace) -> None:
    """Set the Reconstruct widget from the command line."""
    from napari_ddip.viewer.priors import FILE

    widget.method.value = args.method
    widget.slices.value = args.slices
    widget.device.value = args.device
    if args.method in widget.classical and args.iters is not None:
        widget.classical[args.method]["iters"].value = args.iters
    if widget._methods[args.method].diffusion is None:
        return
    if args.prior in widget.prior.choice.choices:
        widget.prior.choice.value = args.prior
    elif args.prior is not None:
        widget.prior.choice.value = FILE
        widget.prior.file.value = args.prior
    settings = {
        "nfe": args.nfe,
        "adapt_steps": args.adapt_steps,
        "k_slices": args.k_slices,
        "slice_batch": args.slice_batch,
    }
    for key, value in settings.items():
        if value is not None:
            form = widget.basic if key in ("nfe", "adapt_steps", "k_slices") else widget.advanced
            field = form[key]
            field.value = value if isinstance(field.value, int) else str(value)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import napari
    from napari.utils.notifications import notification_manager
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="napari-ddip")
    viewer.window.resize(*WINDOW)
    viewer.open_sample("napari-ddip", "ct-phantom")
    _, widget = viewer.window.add_plugin_dock_widget("napari-ddip", "Reconstruct")
    widget.measurement.value = viewer.layers["phantom sinogram"]
    configure(widget, args)
    if widget.run() is None:
        print(f"refused: {notification_manager.records[-1].message}", file=sys.stderr)
        return 1
    app = QApplication.instance()
    deadline = time.monotonic() + args.timeout
    while not widget.panel.run_button.enabled:
        if time.monotonic() > deadline:
            print(f"no result after {args.timeout:.0f} s", file=sys.stderr)
            return 1
        app.processEvents()
        time.sleep(0.05)
    app.processEvents()
    if widget.result is None:
        message = notification_manager.records[-1].message if notification_manager.records else ""
        print(f"the run gave no result: {message}", file=sys.stderr)
        return 1
    viewer.layers["phantom sinogram"].translate = (0, 0, 0)  # in its own cell, not beside
    viewer.canvas.grid.shape = (1, -1)  # one row: phantom | sinogram | result
    viewer.canvas.grid.enabled = True
    viewer.dims.set_point(0, viewer.dims.range[0].stop / 2)
    viewer.reset_view()
    for _ in range(10):
        app.processEvents()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.out), canvas_only=False)
    print(f"wrote {args.out} ({widget.panel.status.value})")
    viewer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
