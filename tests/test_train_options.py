"""Training options: every value that cannot train is refused with a ValueError naming the
command-line option, before a phantom is drawn or a file written."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace

import pytest
import torch

from napari_ddip.cli import add_train_arguments, config_from_args, main
from napari_ddip.device import available_device
from napari_ddip.prior.train import (
    TrainConfig,
    check_config,
    finetune_config,
    finetune_learning_rate,
    train_options,
    train_prior,
)
from napari_ddip.prior.train import pool as pool_module
from napari_ddip.prior.weights import PriorLoadError, load_prior
from tiny import tiny_train_config

BAD_SETTINGS = [
    ({"steps": 0}, "--steps must be at least 1, got 0"),
    ({"batch_size": 0}, "--batch-size must be at least 1, got 0"),
    ({"log_every": 0}, "--log-every must be at least 1, got 0"),
    ({"checkpoint_every": 0}, "--checkpoint-every must be at least 1, got 0"),
    ({"warmup_steps": -1}, "--warmup-steps must be at least 0, got -1"),
    ({"seed": -1}, "--seed must be at least 0"),
    ({"seed": 2**64}, "--seed must be below 2"),
    ({"pool_size": 0}, "--pool-size must be at least 1, got 0"),
    ({"ellipses": 1}, "--ellipses must be at least 2"),
    ({"image_size": 16}, r"--image-size must be at least 32 \(the largest of --patch-sizes\)"),
    ({"whole_image": True, "image_size": 0}, "--image-size must be at least 1, got 0"),
    ({"patch_sizes": (0, 16)}, "--patch-sizes must be one or more sizes of at least 1"),
    ({"patch_sizes": (), "patch_probs": ()}, "--patch-sizes must be one or more sizes"),
    ({"patch_probs": (1.0,)}, "--patch-sizes and --patch-probs need the same number"),
    ({"patch_probs": (-1.0, 2.0)}, "--patch-probs must be finite and at least 0"),
    ({"patch_probs": (0.0, 0.0)}, "with a positive sum"),
    ({"patch_probs": (float("nan"), 1.0)}, "--patch-probs must be finite"),
    ({"lr": 0.0}, "--lr must be a finite number above 0, got 0.0"),
    ({"lr": float("inf")}, "--lr must be a finite number above 0, got inf"),
    ({"lr": float("nan")}, "--lr must be a finite number above 0, got nan"),
    ({"ema_decay": 1.0}, r"--ema-decay must be in \[0, 1\), got 1.0"),
    ({"ema_decay": -0.1}, r"--ema-decay must be in \[0, 1\)"),
    ({"ema_decay": float("nan")}, r"--ema-decay must be in \[0, 1\)"),
    ({"timestep_power": 0.5}, "--timestep-power must be a finite number of at least 1"),
    ({"timestep_power": float("inf")}, "--timestep-power must be a finite number"),
    ({"data_scale": 0.0}, "--data-scale must be a finite number above 0"),
    ({"data_scale": float("nan")}, "--data-scale must be a finite number above 0"),
    ({"base_channels": 0}, "--base-channels must be even and at least 4"),
    ({"base_channels": 2}, "--base-channels must be even and at least 4"),
    ({"base_channels": 5}, "--base-channels must be even and at least 4"),
    ({"channel_mults": ()}, "--channel-mults must be one or more factors of at least 1"),
    ({"channel_mults": (1, 0)}, "--channel-mults must be one or more factors of at least 1"),
    # 6 + 12 channels meet in the decoder: 18 do not split into min(8, 18 // 4) = 4 groups.
    ({"base_channels": 6}, r"--base-channels 6 with --channel-mults 1,2 .*num_channels \(18\)"),
    ({"base_channels": 4, "channel_mults": (1, 9)}, r"num_channels \(36\)"),
    ({"name": "../x"}, "--name must be a file stem"),
    ({"name": "a/b"}, "--name must be a file stem"),
    ({"name": ""}, "--name must be a file stem"),
    ({"name": "."}, "--name must be a file stem"),
    ({"name": ".."}, "--name must be a file stem"),
    ({"name": "prior.safetensors"}, "--name is the file stem, without .safetensors"),
    ({"precision": "fp16"}, "unknown precision 'fp16'"),
]


@pytest.mark.parametrize(("change", "message"), BAD_SETTINGS)
def test_a_setting_that_cannot_train_is_refused_naming_its_option(change, message) -> None:
    with pytest.raises(ValueError, match=message):
        check_config(replace(tiny_train_config(1), **change))


@pytest.mark.parametrize(
    "change",
    [
        {},
        {"base_channels": 4},  # the least the embedding and GroupNorm take
        {"base_channels": 40, "channel_mults": (1, 3, 7)},  # a multiple of 8: any factors
        {"patch_sizes": (1, 3), "image_size": 3},  # the network pads any size
        {"whole_image": True, "image_size": 1},
        {"whole_image": True, "image_size": 8, "patch_sizes": (64,), "patch_probs": (1.0,)},
        {"warmup_steps": 0, "ema_decay": 0.0, "timestep_power": 1.0, "seed": 0},
        {"patch_probs": (0.0, 1.0)},
        {"name": "my.prior-2_b"},
    ],
)
def test_settings_at_their_limits_are_accepted(change) -> None:
    check_config(tiny_train_config(1, **change))


def test_fine_tuning_needs_no_phantom_pool_or_phantom_size() -> None:
    cfg = tiny_train_config(1, pool_size=0, image_size=8)
    check_config(cfg, phantoms=False)
    with pytest.raises(ValueError, match="--pool-size"):
        check_config(cfg)


def test_the_smallest_sizes_train(tmp_path) -> None:
    """Patch and image sizes that are not multiples of the UNet's 2 (or even smaller) are
    padded by the network: sizes down to 1 train."""
    small = dict(batch_size=2, pool_size=2, ellipses=2, log_every=1, checkpoint_every=2)
    patches = tiny_train_config(2, patch_sizes=(1, 3), patch_probs=(1, 1), image_size=3, **small)
    assert train_prior(patches, tmp_path / "patches", device="cpu").is_file()
    whole = tiny_train_config(2, whole_image=True, image_size=1, **small)
    assert train_prior(whole, tmp_path / "whole", device="cpu").is_file()


def test_a_refused_setting_writes_nothing_and_draws_no_phantom(tmp_path, monkeypatch) -> None:
    def no_phantoms(*args, **kwargs):
        raise AssertionError("a phantom was drawn")

    monkeypatch.setattr(pool_module, "ellipse_phantoms", no_phantoms)
    out = tmp_path / "out"
    for cfg, device in (
        (tiny_train_config(1, checkpoint_every=0), "cpu"),
        (tiny_train_config(1, name="../escaped"), "cpu"),
        (tiny_train_config(1, precision="tf32"), "cpu"),
        (tiny_train_config(1), "gpu"),
    ):
        with pytest.raises(ValueError):
            train_prior(cfg, out, device=device)
    assert list(tmp_path.iterdir()) == []


def test_a_dotted_name_writes_its_whole_stem_in_the_output_folder(tmp_path) -> None:
    cfg = tiny_train_config(1, name="run.2", batch_size=2, pool_size=2, checkpoint_every=1)
    path = train_prior(cfg, tmp_path, device="cpu")
    assert path == tmp_path / "run.2.safetensors"
    assert json.loads((tmp_path / "run.2.json").read_text())["info"]["steps"] == 1
    assert (tmp_path / "run.2.md").is_file()
    assert load_prior(tmp_path / "run.2").config.patch_size == 32


@pytest.mark.parametrize("device", ["gpu", "mps", "meta", "cuda:x"])
def test_a_device_that_is_not_cpu_or_cuda_is_refused(device) -> None:
    with pytest.raises(
        ValueError, match=f"--device must be auto, cpu, cuda or cuda:N, got '{device}'"
    ):
        available_device(device)


def test_a_cuda_device_this_machine_lacks_is_refused(monkeypatch) -> None:
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    with pytest.raises(ValueError, match="--device cuda: no CUDA device is available"):
        available_device("cuda")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(ValueError, match="--device cuda:1: this machine has 1 CUDA device"):
        available_device("cuda:1")
    assert available_device("cuda:0") == torch.device("cuda:0")
    assert available_device("cpu") == torch.device("cpu")


def test_tf32_on_the_cpu_is_refused(tmp_path) -> None:
    with pytest.raises(ValueError, match="tf32 needs a CUDA device, not cpu"):
        train_prior(tiny_train_config(1, precision="tf32"), tmp_path / "tf32", device="cpu")


def test_an_output_folder_that_is_a_file_is_refused(tmp_path) -> None:
    file = tmp_path / "file"
    file.write_text("not a folder")
    with pytest.raises(ValueError, match=f"--out {file} is a file"):
        train_prior(tiny_train_config(1), file, device="cpu")
    with pytest.raises(ValueError, match="a folder above it is a file"):
        train_prior(tiny_train_config(1), file / "inside", device="cpu")


def test_an_unknown_prior_to_continue_is_refused_with_the_shipped_names(tmp_path) -> None:
    with pytest.raises(PriorLoadError, match="prior 'bogus' not found: give a shipped name"):
        train_prior(tiny_train_config(1), tmp_path / "out", device="cpu", init="bogus")
    assert not (tmp_path / "out").exists()


def _parse(argv: list[str], finetune: bool = False) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser, finetune=finetune)
    return parser.parse_args(["--out", "unused", *argv])


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--patch-sizes", "16,x"], "--patch-sizes must be a comma list of integers, got '16,x'"),
        (["--patch-sizes", ""], "--patch-sizes must be a comma list of integers, got ''"),
        (["--patch-probs", "0.5,a,b"], "--patch-probs must be a comma list of numbers"),
        (["--channel-mults", "1,,2"], "--channel-mults must be a comma list of integers"),
        (["--checkpoint-every", "0"], "--checkpoint-every must be at least 1, got 0"),
        (["--lr", "nan"], "--lr must be a finite number above 0, got nan"),
        (["--name", "../x"], "--name must be a file stem"),
    ],
)
def test_options_that_cannot_train_are_refused_naming_the_option(argv, message) -> None:
    with pytest.raises(ValueError, match=message):
        config_from_args(_parse(argv))


def test_fine_tuning_options_are_checked_without_the_phantom_settings() -> None:
    cfg = config_from_args(_parse(["--patch-sizes", "512", "--patch-probs", "1"], True), True)
    assert cfg.patch_sizes == (512,) and cfg.augment  # no phantoms: any image size
    with pytest.raises(ValueError, match="--ema-decay must be in"):
        config_from_args(_parse(["--ema-decay", "1"], finetune=True), finetune=True)
    # the learning rate is left to the base prior's kind unless given
    assert config_from_args(_parse([], True), True).lr is None
    assert config_from_args(_parse(["--lr", "auto"], True), True).lr is None
    assert config_from_args(_parse(["--lr", "3e-4"], True), True).lr == 3e-4
    assert finetune_learning_rate(denoiser=True) < finetune_learning_rate(denoiser=False)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        (["--checkpoint-every", "0"], "--checkpoint-every must be at least 1, got 0"),
        (["--name", "../x"], "--name must be a file stem"),
        (["--patch-sizes", "16,x"], "--patch-sizes must be a comma list of integers"),
    ],
)
def test_the_command_reports_a_bad_option_in_one_line(tmp_path, capsys, option, message) -> None:
    out = tmp_path / "out"
    assert main(["train-prior", "--out", str(out), "--device", "cpu", *option]) == 2
    err = capsys.readouterr().err
    assert f"napari-ddip: error: {message}" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("finetune", "expected"), [(False, TrainConfig()), (True, finetune_config())]
)
def test_the_command_line_takes_its_defaults_from_the_configuration(finetune, expected) -> None:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser, finetune=finetune)
    assert config_from_args(parser.parse_args(["--out", "unused"]), finetune) == expected
    assert finetune_config().steps == 500 and finetune_config().augment
    assert finetune_config().pool_refresh == 0 and TrainConfig().pool_refresh == 2
    helps = {action.dest: action.help for action in parser._actions}
    for option in train_options(finetune):
        assert helps[option.name] == option.help and option.help
    assert ("ellipses" in helps) is not finetune  # fine-tuning keeps the base's network
