"""The engine: tensors and reverse-mode autodiff, the bottom of minift's stack.

Read in this order: ``tensor.py`` (``Tensor`` and ``backward``), ``autograd.py``
(``Function``, its context, ``no_grad``, un-broadcasting), ``creation.py`` and
``random.py`` (making tensors, seeded), ``gradcheck.py`` (gradients against central
differences).
"""
