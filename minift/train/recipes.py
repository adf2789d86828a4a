"""Fine-tuning recipes: the published ways to adapt a pretrained model, as functions of a Learner.

Each recipe is a few calls on a ``minift.train.Learner`` whose model has a pretrained
body and a new head (its last layer group). They differ in how long the body stays
frozen, how it is unfrozen, and which learning rates each layer group gets:

==================  ==========================================================================
``fine_tune``       fastai: head only with 1cycle, then everything with ``slice`` lrs and 1cycle
``keras_recipe``    Keras guide: head only, then everything at a low constant lr; BatchNorm
                    stays frozen in inference mode throughout
``ulmfit``          ULMFiT: one more group unfrozen per stage, lr / 2.6 per group down, STLR
``lp_ft``           Kumar et al. 2022: a linear probe (body fixed, BatchNorm included), then a
                    full fine-tune from the probed head at one small lr
==================  ==========================================================================

Why train the head first at all? A random head sends large, meaningless gradients into
the body, and the first steps of fine-tuning would spend the pretrained features on
fitting noise (Kumar et al. show this distorts features and hurts out-of-distribution
accuracy). With the body frozen, the head first learns to read the features as they
are; unfreezing then only refines them. Each recipe returns the learner, whose
``history`` shows the phases (``history.fit_starts``).
"""

from __future__ import annotations

from ..finetune.freezing import batchnorm_parameter_ids
from ..finetune.lrs import ulmfit_lrs
from .unfreezing import GradualUnfreezing


def fine_tune(learner, epochs: int, base_lr: float = 2e-3, freeze_epochs: int = 1, lr_mult: float = 100,
              pct_start: float = 0.3, div: float = 5.0):
    """fastai's ``Learner.fine_tune``, step for step::

        freeze()                                       # only the head group trains
        fit_one_cycle(freeze_epochs, slice(base_lr), pct_start=0.99)
        base_lr /= 2
        unfreeze()
        fit_one_cycle(epochs, slice(base_lr / lr_mult, base_lr), pct_start=pct_start, div=div)

    ``slice(base_lr)`` gives the head ``base_lr`` and every other group ``base_lr / 10``
    (they are frozen in the first phase, so only the head's rate matters there).
    """
    if freeze_epochs > 0:  # fastai's fit refuses 0 epochs too; its fine_tune always has a frozen phase
        learner.freeze()
        learner.fit_one_cycle(freeze_epochs, slice(base_lr), pct_start=0.99)
    base_lr /= 2
    learner.unfreeze()
    learner.fit_one_cycle(epochs, slice(base_lr / lr_mult, base_lr), pct_start=pct_start, div=div)
    return learner


def keras_recipe(learner, head_epochs: int, finetune_epochs: int, head_lr: float = 1e-3, finetune_lr: float = 1e-5):
    """The Keras transfer-learning guide: freeze the base model, train the head at
    ``head_lr``; then unfreeze the base and train everything at a low ``finetune_lr``,
    both at a constant lr.

    BatchNorm follows Keras: its layers run in inference mode through *both* phases (the
    guide calls the base model with ``training=False``), so their running statistics
    never move. minift expresses that with the ``"keras"`` policy (set on the model by this
    recipe) and by keeping the body's BatchNorm parameters frozen when the rest unfreezes.
    """
    learner.set_bn_policy("keras")
    learner.freeze()
    learner.fit(head_epochs, head_lr)
    learner.unfreeze()
    head = {id(p) for p in learner.groups[-1].parameters()}
    batchnorm = batchnorm_parameter_ids(learner.model)
    for param in learner.model.parameters():
        if id(param) in batchnorm and id(param) not in head:
            param.requires_grad_(False)
    learner.fit(finetune_epochs, finetune_lr)
    return learner


def ulmfit(learner, epochs_per_stage: int, lr: float, factor: float = 2.6):
    """ULMFiT's classifier fine-tuning (Howard & Ruder 2018, section 3.3), in one ``fit``:

    - gradual unfreezing: stage ``s`` trains the last ``s + 1`` groups, ``epochs_per_stage``
      epochs per stage, one stage per layer group;
    - discriminative lrs: the head gets ``lr``, each group below it ``1/factor`` of the
      one above (``ulmfit_lrs``);
    - a slanted triangular schedule over all the iterations (the paper's ``T``).
    """
    n_groups = len(learner.groups)
    learner.fit(
        epochs_per_stage * n_groups, ulmfit_lrs(lr, n_groups, factor), schedule="slanted_triangular",
        unfreeze_schedule=GradualUnfreezing(every=epochs_per_stage),
    )
    return learner


def lp_ft(learner, probe_epochs: int, ft_epochs: int, probe_lr: float = 1e-2, ft_lr: float = 1e-4):
    """LP-FT (Kumar et al. 2022, "Fine-Tuning can Distort Pretrained Features"):

    1. linear probe: the body is a fixed feature extractor -- frozen, its BatchNorm layers
       in inference mode -- and only the head trains, at ``probe_lr`` (cosine schedule);
    2. fine-tune: everything trains at one small ``ft_lr`` (cosine schedule), starting from
       the probed head, so the body's features are not distorted to fit a random head.

    The learner's BatchNorm policy is restored for phase 2.
    """
    policy = learner.bn_policy
    learner.set_bn_policy("keras")  # a probe freezes BatchNorm too, and runs it in inference mode
    try:
        learner.freeze()
        learner.fit(probe_epochs, probe_lr, schedule="cosine")
    finally:
        learner.set_bn_policy(policy)
    learner.unfreeze()
    learner.fit(ft_epochs, ft_lr, schedule="cosine")
    return learner
