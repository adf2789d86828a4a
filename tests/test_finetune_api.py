"""The public names of minift.finetune, including those loaded lazily from recipes.py and
unfreezing.py (lazily because they import minift.train, which imports minift.finetune)."""

import importlib

import pytest

import minift.finetune


@pytest.mark.parametrize("name", minift.finetune.__all__)
def test_every_exported_name_resolves(name):
    assert getattr(minift.finetune, name) is not None
    assert name in dir(minift.finetune)


@pytest.mark.parametrize("name, module", sorted(minift.finetune._LAZY.items()))
def test_lazy_names_are_the_objects_of_their_modules(name, module):
    assert getattr(minift.finetune, name) is getattr(importlib.import_module(f"minift.finetune.{module}"), name)


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'unfreeze_all'"):
        minift.finetune.unfreeze_all
