"""DCGH (Deep Class-Guided Hashing, docs/dcgh.md): model, loss, optimisers, training."""

from hashjax.dcgh.export import encode_split, load_encoder
from hashjax.dcgh.losses import LOSS_TERMS, dcgh_loss, init_proxies
from hashjax.dcgh.factory import build_model
from hashjax.dcgh.model import DCGH, FeatureDCGH
from hashjax.dcgh.optim import (
    bert_adam,
    dcgh_optimizer,
    proxy_optimizer,
    warmup_cosine_schedule,
)
from hashjax.dcgh.train import train_and_evaluate, train_step

__all__ = [
    "DCGH",
    "FeatureDCGH",
    "LOSS_TERMS",
    "bert_adam",
    "build_model",
    "dcgh_loss",
    "dcgh_optimizer",
    "encode_split",
    "init_proxies",
    "load_encoder",
    "proxy_optimizer",
    "train_and_evaluate",
    "train_step",
    "warmup_cosine_schedule",
]
