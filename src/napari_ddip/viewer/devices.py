"""The device chooser's entries: auto, the CPU and every CUDA GPU with its memory."""

from __future__ import annotations

#: Bytes per GiB.
GIB = 2**30


def device_choices() -> list[tuple[str, str]]:
    """``(label, value)`` pairs for a ComboBox: ``auto``, ``cpu`` and ``cuda:N`` for each GPU
    (labelled with its name and memory, from ``torch.cuda.get_device_properties``)."""
    import torch

    gpus = []
    for i in range(torch.cuda.device_count()):
        props = torch.cuda.get_device_properties(i)
        gpus.append((f"cuda:{i} ({props.name}, {props.total_memory / GIB:.0f} GiB)", f"cuda:{i}"))
    auto = f"auto ({'cuda:0' if gpus else 'cpu'})"
    return [(auto, "auto"), ("cpu", "cpu"), *gpus]
