"""``minift.nn``: Module, Parameter and the layers, with PyTorch's names and defaults."""

from . import functional, init, utils
from .activation import GELU, Dropout, LeakyReLU, ReLU, ReLU6, Sigmoid, Softmax, Tanh
from .attention import MultiheadAttention, scaled_dot_product_attention
from .container import ModuleDict, ModuleList, Sequential
from .conv import AdaptiveAvgPool2d, AvgPool2d, Conv2d, MaxPool2d
from .embedding import Embedding
from .linear import Flatten, Identity, Linear
from .module import Module, Parameter
from .normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from .residual import ResidualBlock
from .transformer import TransformerEncoder, TransformerEncoderLayer

__all__ = [
    "functional", "init", "utils", "Module", "Parameter", "Linear", "Identity", "Flatten", "Conv2d", "MaxPool2d",
    "AvgPool2d", "AdaptiveAvgPool2d", "BatchNorm1d", "BatchNorm2d", "LayerNorm", "Dropout", "Embedding",
    "ReLU", "ReLU6", "GELU", "Tanh", "Sigmoid", "LeakyReLU", "Softmax", "Sequential", "ModuleList", "ModuleDict",
    "ResidualBlock", "MultiheadAttention", "scaled_dot_product_attention", "TransformerEncoderLayer",
    "TransformerEncoder",
]
