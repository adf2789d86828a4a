"""``minift.nn``: Module, Parameter and the layers, with PyTorch's names and defaults."""

from . import functional, init, utils
from .activation import (GELU, Dropout, Hardsigmoid, Hardswish, LeakyReLU, Mish, ReLU, ReLU6, Sigmoid, SiLU, Softmax,
                         Softplus, Tanh)
from .attention import MultiheadAttention, attention_output, scaled_dot_product_attention
from .container import ModuleDict, ModuleList, ParameterDict, ParameterList, Sequential
from .conv import AdaptiveAvgPool2d, AvgPool2d, Conv1d, Conv2d, ConvTranspose2d, MaxPool2d
from .embedding import Embedding
from .linear import Flatten, Identity, Linear
from .loss import BCEWithLogitsLoss, CrossEntropyLoss, L1Loss, MSELoss, NLLLoss, SmoothL1Loss
from .module import Module, Parameter
from .normalization import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, RMSNorm
from .residual import ResidualBlock
from .transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "functional", "init", "utils", "Module", "Parameter", "Linear", "Identity", "Flatten", "Conv1d", "Conv2d",
    "ConvTranspose2d", "MaxPool2d",
    "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Dropout", "Embedding",
    "ReLU", "GELU", "Tanh", "Sigmoid", "LeakyReLU", "Softmax", "Sequential", "ModuleList", "ModuleDict",
    "ResidualBlock", "MultiheadAttention", "scaled_dot_product_attention", "attention_output", "TransformerEncoderLayer",
    "TransformerEncoder",
    "ReLU6", "Hardsigmoid", "Hardswish", "SiLU", "Mish", "Softplus", "GroupNorm", "RMSNorm",
    "ParameterList", "ParameterDict", "CrossEntropyLoss", "NLLLoss", "MSELoss", "L1Loss", "SmoothL1Loss", "BCEWithLogitsLoss",
]
