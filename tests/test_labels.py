import re
from pathlib import Path

import pytest

from helpers import LABELS, LESSON_CLASSES, class_name, find_classes
from helpers.labels import check_class_id

ROOT = Path(__file__).resolve().parent.parent


def test_labels_are_torchvisions_1000_categories():
    from torchvision.models import ResNet50_Weights

    assert len(LABELS) == 1000
    assert list(LABELS) == ResNet50_Weights.IMAGENET1K_V1.meta["categories"]


@pytest.mark.parametrize("class_id, name", [
    (157, "papillon"), (250, "Siberian husky"), (918, "crossword puzzle"), (919, "street sign"),
    (245, "French bulldog"), (281, "tabby"), (285, "Egyptian cat"), (537, "dogsled"), (799, "sliding door"),
])
def test_the_seeds_mislabelled_classes_have_their_true_names(class_id, name):
    assert LABELS[class_id] == name


def test_lesson_classes_are_the_seeds_plus_the_two_it_meant():
    assert set(LESSON_CLASSES) == {157, 162, 245, 281, 285, 360, 537, 799, 918, 250, 919}


def test_class_name_and_find_classes():
    assert class_name(245) == "245 · French bulldog"
    assert find_classes("TABBY") == [281]
    assert 285 in find_classes("cat") and 484 in find_classes("cat")   # catamaran: substring search
    assert find_classes("   ") == []


@pytest.mark.parametrize("bad", [True, 3.0, "245", -1, 1000, None])
def test_check_class_id_names_the_range(bad):
    with pytest.raises((TypeError, ValueError), match=r"0\.\.999"):
        check_class_id(bad)


def test_no_eval_of_downloaded_text_in_helpers():
    for path in (ROOT / "helpers").glob("*.py"):
        assert not re.search(r"(?<![.\w])eval\(", path.read_text()), f"{path.name} calls eval()"


def test_class_ids_from_torch_or_numpy_are_taken_when_they_hold_one_id():
    import numpy as np
    import torch

    logits = torch.zeros(1, 1000)
    logits[0, 245] = 1.0
    assert check_class_id(logits.argmax(1)) == 245                 # tensor([245]): one image's top class
    assert check_class_id(logits.argmax()) == 245 and check_class_id(np.array([281])) == 281
    assert class_name(torch.tensor(281)) == "281 · tabby"
    with pytest.raises(ValueError, match="one class id, got a Tensor of 2 values"):
        check_class_id(torch.tensor([245, 281]))
    for bad in (torch.tensor([2.0]), torch.tensor([True]), np.array([1.5])):
        with pytest.raises(TypeError, match=r"0\.\.999"):
            check_class_id(bad)
