"""Training and fine-tuning the prior (``napari-ddip train-prior`` / ``finetune-prior``).

One module per concern:

- :mod:`.config` — :class:`TrainConfig` (every setting, with its help and its fine-tuning
  default), its checks, and :func:`train_options` for the command line and the widget;
- :mod:`.pool` — the phantoms or user images trained on, and the patch batches cut from them;
- :mod:`.loop` — :func:`train_prior`: the optimiser steps, learning rate and timesteps;
- :mod:`.checkpoint` — the output folder, checkpoints and which run may resume them;
- :mod:`.card` — the facts a trained prior records and its Markdown model card;
- :mod:`.images` — user images scaled for fine-tuning.
"""

from napari_ddip.prior.train.card import model_card
from napari_ddip.prior.train.checkpoint import TrainingOutputError, run_identity
from napari_ddip.prior.train.config import (
    TrainConfig,
    TrainOption,
    check_config,
    finetune_config,
    finetune_learning_rate,
    train_options,
)
from napari_ddip.prior.train.images import images_from_arrays
from napari_ddip.prior.train.loop import learning_rate, train_prior, training_timesteps

__all__ = [
    "TrainConfig",
    "TrainOption",
    "TrainingOutputError",
    "check_config",
    "finetune_config",
    "finetune_learning_rate",
    "images_from_arrays",
    "learning_rate",
    "model_card",
    "run_identity",
    "train_options",
    "train_prior",
    "training_timesteps",
]
