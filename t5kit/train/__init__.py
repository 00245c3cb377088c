"""Pretraining: the trainer loop, optimizers, learning-rate schedules, loss, checkpoints, metrics and plots."""

from t5kit.train.config import OptimizerConfig, ParallelConfig, PretrainConfig, ScheduleConfig, TrainConfig


def pretrain(config):
    """Pretrain a model as `config` (a PretrainConfig, a dict or a YAML path) describes; return the result."""
    from t5kit.train.trainer import pretrain as _pretrain

    return _pretrain(config)


__all__ = ["OptimizerConfig", "ParallelConfig", "PretrainConfig", "ScheduleConfig", "TrainConfig", "pretrain"]
