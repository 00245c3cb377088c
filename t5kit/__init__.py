"""t5kit: a PyTorch-native framework for the T5 family of encoder-decoder models."""

__version__ = "0.1.0"


def pretrain(config, **kwargs):
    """Pretrain a model from a PretrainConfig, a dict of config sections or a YAML path (see t5kit.train)."""
    from t5kit.train.trainer import pretrain as _pretrain

    return _pretrain(config, **kwargs)
