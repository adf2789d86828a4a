"""The public names of minift.finetune, and where the names that drive a Learner went."""

import pytest

import minift.finetune
import minift.train


@pytest.mark.parametrize("name", minift.finetune.__all__)
def test_every_exported_name_resolves(name):
    assert getattr(minift.finetune, name) is not None
    assert name in dir(minift.finetune)


@pytest.mark.parametrize("name", sorted(minift.finetune._MOVED_TO_TRAIN))
def test_the_recipes_live_in_train_and_finetune_says_so(name):
    assert name in minift.train.__all__ and getattr(minift.train, name) is not None
    with pytest.raises(AttributeError, match=f"lives in minift.train: from minift.train import {name}"):
        getattr(minift.finetune, name)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'unfreeze_all'"):
        minift.finetune.unfreeze_all
