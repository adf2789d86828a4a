"""EfficientNet-Lite0's forward pass written out in PyTorch from the formulas: the
independent reference.

Two users: ``tests/test_efficientnet.py`` compares minift's ``EfficientNetLite0`` logits and
every gradient against it, and ``minift finetune-image --bench`` times it as the PyTorch row
beside the NumPy and Numba backends. It is deliberately not a port of
``minift.models.efficientnet`` (no modules, no shared code beyond the table of stages): the
formulas once more, in another library, on a flat dict of tensors named as in the checkpoint::

    same(x, k, s)  = pad x by TensorFlow's 'SAME' rule: total max((ceil(n/s) - 1) s + k - n, 0),
                     the smaller half first
    bn(x)          = (x - mean) / sqrt(var + 1e-3) * weight + bias   (batch statistics in training)
    block(x)       = bn2(conv1x1(relu6(bn1(dwconv_k,s(relu6(bn0(conv1x1(x))))))))  [+ x]
    logits         = fc(mean_hw(relu6(bn1(conv_head(blocks(relu6(bn0(conv_stem(x)))))))))

PyTorch is optional for minift: import this module only where torch is installed.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as TF

from .efficientnet import STAGES


def torch_state(state_dict: dict, requires_grad: bool = False) -> dict:
    """minift's ``state_dict`` (NumPy arrays) as torch tensors; the floating ones that are
    parameters (not BatchNorm's running statistics) require gradients when asked."""
    def wants_grad(name, array):
        return requires_grad and array.dtype.kind == "f" and not name.endswith(("running_mean", "running_var"))

    return {name: torch.tensor(np.asarray(array), requires_grad=wants_grad(name, np.asarray(array)))
            for name, array in state_dict.items()}


def _same(x, kernel: int, stride: int):
    pads = []
    for size in (x.shape[3], x.shape[2]):  # F.pad lists the last axis first
        total = max((-(-size // stride) - 1) * stride + kernel - size, 0)
        pads += [total // 2, total - total // 2]
    return TF.pad(x, pads)


def torch_efficientnet_lite0(state: dict, x, training: bool = False):
    """Logits ``(N, classes)`` for ``x (N, 3, H, W)`` (already scaled) with weights ``state``.

    ``training``: BatchNorm uses batch statistics (running statistics are not updated);
    dropout and drop-connect are left out, so that the result is deterministic.
    """

    def conv(h, name, stride=1, groups=1):
        weight = state[f"{name}.weight"]
        return TF.conv2d(_same(h, weight.shape[-1], stride), weight, None, stride, 0, 1, groups)

    def bn(h, name):
        return TF.batch_norm(h, state[f"{name}.running_mean"], state[f"{name}.running_var"], state[f"{name}.weight"],
                             state[f"{name}.bias"], training=training, momentum=0.0, eps=1e-3)

    def relu6(h):
        return TF.hardtanh(h, 0.0, 6.0)

    h = relu6(bn(conv(x, "_conv_stem", 2), "_bn0"))
    index = 0
    for repeats, kernel, stride, expand, c_in, c_out in STAGES:
        for r in range(repeats):
            name, block_in = f"_blocks.{index}", h
            if expand != 1:
                h = relu6(bn(conv(h, f"{name}._expand_conv"), f"{name}._bn0"))
            h = relu6(bn(conv(h, f"{name}._depthwise_conv", stride if r == 0 else 1, groups=h.shape[1]), f"{name}._bn1"))
            h = bn(conv(h, f"{name}._project_conv"), f"{name}._bn2")
            if (stride == 1 or r > 0) and (c_in == c_out or r > 0):
                h = h + block_in
            index += 1
    h = relu6(bn(conv(h, "_conv_head"), "_bn1")).mean(dim=(2, 3))
    return h @ state["_fc.weight"].T + state["_fc.bias"]
