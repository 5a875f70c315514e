"""``--set KEY=VALUE`` settings of every method: non-finite numbers and values outside a
setting's range are refused, naming the setting, before any work is done; the boundary values
of each range still run."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from napari_ddip.cli import main
from napari_ddip.io import InputError, Measurement
from napari_ddip.methods import (
    METHODS,
    prepare,
    reconstruct_measurement,
    resolve_settings,
)
from napari_ddip.operators import operator_from_measurement
from napari_ddip.prior.phantoms import ellipsoid_volume
from napari_ddip.recon import ReconConfig, reconstruct, run_to_end
from napari_ddip.recon.config import Bound
from napari_ddip.simulate import simulate_ct
from tiny import tiny_prior

pytestmark = pytest.mark.usefixtures("one_thread")

#: ``(method, setting, value)`` that no method accepts as a number.
NON_FINITE = [
    ("cg", "damping", "nan"),
    ("tv", "lam", "nan"),
    ("tv", "rho", "-inf"),
    ("d3ip", "lr", "inf"),
    ("d3ip", "gamma", "nan"),
    ("d3ip", "gamma", "inf"),
    ("dps", "dps_step", "nan"),
    ("dds", "timestep_power", "nan"),
    ("dds", "eta", "NaN"),
]

#: ``(method, setting, value, the range in the message)`` outside a setting's range.
OUT_OF_RANGE = [
    ("cg", "iters", "0", "at least 1"),
    ("cg", "iters", "-5", "at least 1"),
    ("cg", "damping", "-1", "not be negative"),
    ("tv", "iters", "0", "at least 1"),
    ("tv", "iters", "-1", "at least 1"),
    ("tv", "cg_iters", "0", "at least 1"),
    ("tv", "rho", "0", "be positive"),
    ("tv", "rho", "-1", "be positive"),
    ("tv", "lam", "-1", "not be negative"),
    ("d3ip-mbir", "admm_rho", "0", "be positive"),
    ("d3ip-mbir", "admm_lam", "-1e-3", "not be negative"),
    ("d3ip-mbir", "admm_iters", "0", "at least 1"),
    ("d3ip", "lr", "0", "be positive"),
    ("d3ip", "k_slices", "0", "at least 1"),
    ("d3ip", "adapt_steps", "-1", "not be negative"),
    ("d3ip", "slice_batch", "0", "at least 1"),
    ("d3ip-meta", "meta_step_start", "1.5", r"in \[0, 1\]"),
    ("d3ip-meta", "meta_step_end", "-0.1", r"in \[0, 1\]"),
    ("dps", "dps_step", "-1", "not be negative"),
    ("ddnm", "ddnm_cg_iters", "0", "at least 1"),
    ("dds", "eta", "1.5", r"in \[0, 1\]"),
    ("dds", "timestep_power", "0.5", "at least 1"),
    ("d3ip", "t_max", "-1", "not be negative"),
    ("dds", "samples", "0", "at least 1"),
]


@pytest.fixture(scope="module")
def ct() -> Measurement:
    """A 4-slice 16² CT measurement with 8 views."""
    return simulate_ct(ellipsoid_volume((4, 16, 16), seed=1), n_views=8)


def _refused(m: Measurement, method: str, settings: dict[str, object]) -> str:
    """The InputError message of reconstructing ``m``; asserts that no work was reported."""
    calls: list[object] = []
    with pytest.raises(InputError) as info:
        reconstruct_measurement(m, method, settings, on_event=calls.append)
    assert calls == []
    return str(info.value)


@pytest.mark.parametrize(("method", "key", "value"), NON_FINITE)
def test_non_finite_numbers_are_refused_before_any_work(ct, method, key, value) -> None:
    message = _refused(ct, method, {key: value})
    assert f"setting {key}=" in message and "finite" in message


@pytest.mark.parametrize("value", [float("nan"), float("inf"), np.float32("-inf")])
def test_typed_non_finite_numbers_are_refused(value) -> None:
    with pytest.raises(InputError, match=r"damping.*finite"):
        resolve_settings(METHODS["cg"], {"damping": value})


@pytest.mark.parametrize(("method", "key", "value", "allowed"), OUT_OF_RANGE)
def test_values_out_of_range_are_refused_before_any_work(ct, method, key, value, allowed) -> None:
    message = _refused(ct, method, {key: value})
    assert message.startswith(f"setting {key} must ")
    assert re.search(allowed, message), message


@pytest.mark.parametrize(
    ("method", "key", "value", "expected"),
    [
        ("d3ip", "adapt_steps", "2.5", "expected auto or a whole number"),
        ("dds", "slice_batch", "many", "expected auto or a whole number"),
        ("cg", "iters", "1e3", "expected int"),
        ("d3ip", "keep_optimizer", "maybe", "expected bool"),
        ("tv", "lam", "small", "expected auto or a number"),
    ],
)
def test_text_that_is_not_of_the_settings_type_is_refused(ct, method, key, value, expected):
    assert _refused(ct, method, {key: value}) == f"setting {key}={value!r}: {expected}"


def test_an_automatic_count_is_parsed_as_a_whole_number(ct) -> None:
    request = prepare(ct, "d3ip", {"adapt_steps": "3", "slice_batch": "2", "lr": "auto"})
    assert request.settings["adapt_steps"] == 3 and type(request.settings["adapt_steps"]) is int
    assert request.config.slice_batch == 2 and request.config.lr is None


def test_every_numeric_setting_has_a_range() -> None:
    for method in METHODS.values():
        numeric = {
            key
            for key, default in method.defaults.items()
            if default is None
            or (isinstance(default, int | float) and not isinstance(default, bool))
        }
        assert numeric == set(method.bounds), method.name
        assert all(isinstance(bound, Bound) for bound in method.bounds.values())


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"lr": float("inf")}, "lr must be positive"),
        ({"admm_rho": 0.0}, "admm_rho must be positive"),
        ({"dps_step": float("nan")}, "dps_step must not be negative"),
        ({"slice_batch": 1.5}, "slice_batch must be a whole number"),
        ({"meta_step_end": 2.0}, r"meta_step_end must be in \[0, 1\]"),
    ],
)
def test_the_engine_config_refuses_the_same_ranges(setting, message) -> None:
    with pytest.raises(ValueError, match=message):
        ReconConfig(**setting)


def test_the_command_line_refuses_a_bad_setting_without_output(tmp_path, capsys) -> None:
    volume, meas, out = tmp_path / "v.npy", tmp_path / "m.npz", tmp_path / "r.tif"
    np.save(volume, ellipsoid_volume((4, 16, 16), seed=1))
    assert main(["simulate", "ct", str(volume), str(meas), "--views", "8"]) == 0
    capsys.readouterr()
    for setting, words in [("rho=0", "rho must be positive"), ("lam=nan", "lam='nan'")]:
        code = main(["reconstruct", str(meas), str(out), "--method", "tv", "--set", setting])
        assert code == 2 and words in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize(
    ("method", "settings"),
    [
        ("cg", {"iters": "1", "damping": "0"}),
        ("tv", {"iters": "1", "cg_iters": "1", "lam": "0", "rho": "1e-9"}),
        ("tv", {"iters": "1", "cg_iters": "1", "lam": "auto", "rho": "auto"}),
    ],
)
def test_classical_boundary_values_run(ct, method, settings) -> None:
    calls = []
    result = reconstruct_measurement(ct, method, settings, on_event=calls.append)
    assert result.volume.shape == (4, 16, 16) and np.isfinite(result.volume).all()
    assert calls and calls[-1].step == calls[-1].total
    assert result.provenance["settings"]["iters"] == 1


@pytest.mark.parametrize(
    ("method", "settings"),
    [
        ("dds", {"nfe": "1", "eta": "0", "timestep_power": "1", "cg_iters": "0"}),
        ("dps", {"nfe": "2", "eta": "1", "dps_step": "0"}),
        (
            "d3ip-mbir",
            {"nfe": "2", "adapt_steps": "0", "admm_lam": "0", "mbir_anchor": "0"}
            | {"admm_iters": "1", "admm_cg": "1", "k_slices": "1", "lora_rank": "1"},
        ),
        (
            "d3ip-meta",
            {"nfe": "2", "adapt_steps": "1", "meta_step_start": "1", "meta_step_end": "0"}
            | {"t_min": "0", "t_max": "0", "k_slices": "1", "slice_batch": "1"},
        ),
    ],
)
def test_diffusion_boundary_values_run(ct, method, settings) -> None:
    cfg = prepare(ct, method, settings | {"preview_every": "0"}).config
    op = operator_from_measurement(ct, torch.device("cpu"))
    y = torch.from_numpy(ct.data)
    result = run_to_end(reconstruct(y, op, cfg, prior=tiny_prior()))
    assert result.volume.shape == (4, 16, 16) and np.isfinite(result.volume).all()


def test_warm_start_refusal_names_the_method(ct) -> None:
    op = operator_from_measurement(ct, torch.device("cpu"))
    y = torch.from_numpy(ct.data)
    cfg = ReconConfig(method="dds", nfe=1, preview_every=0)
    with pytest.raises(ValueError, match="not to dds"):
        next(iter(reconstruct(y, op, cfg, prior=tiny_prior(), warm_start={0: {}})))


def test_every_engine_setting_belongs_to_a_method_and_each_method_takes_only_its_own() -> None:
    from dataclasses import fields

    from napari_ddip.recon.config import ENGINE_SETTINGS
    from napari_ddip.recon.diffusion_methods import DIFFUSION_METHODS

    engine_fields = {f.name for f in fields(ReconConfig)} - {"method", "seed"}
    assert set(ENGINE_SETTINGS) == engine_fields  # each field made with setting(...)
    taken = {key for name in DIFFUSION_METHODS for key in METHODS[name].settings}
    assert taken == engine_fields | {"warm_start"}
    assert "lora_rank" not in METHODS["dds"].settings and "cg_iters" in METHODS["dds"].settings
    assert (
        "k_slices" not in METHODS["ddip"].settings and "gamma" not in METHODS["d3ip-mbir"].settings
    )
    assert [name for name, m in METHODS.items() if m.can_warm_start] == [
        "d3ip",
        "d3ip-mbir",
        "d3ip-tv",
        "d3ip-meta",
    ]
    assert "prior_error" in METHODS["dds-tv"].settings
    assert METHODS["dds-tv"].diffusion.consistency.mode == "tv"
