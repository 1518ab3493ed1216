"""The 1000 ImageNet class names, read from the label file that ships with the lesson.

The file ``data/imagenet_classes.txt`` holds one name per line, line ``i`` being class ``i``.
It was written once from torchvision's ``ResNet50_Weights.IMAGENET1K_V1.meta["categories"]``
(see ``tools/make_labels.py``); nothing here evaluates code or touches the network.

>>> from helpers import LABELS
>>> LABELS[245]
'French bulldog'
"""

from __future__ import annotations

from typing import Iterable, List, Sequence, Tuple

from ._files import read_data_file

#: How many classes an ImageNet classifier predicts.
NUM_CLASSES = 1000


def _read_labels() -> Tuple[str, ...]:
    text = read_data_file("imagenet_classes.txt")
    names = tuple(line.strip() for line in text.splitlines() if line.strip())
    if len(names) != NUM_CLASSES:
        raise RuntimeError(f"the label file holds {len(names)} names, expected {NUM_CLASSES}")
    return names


#: The ImageNet class names, indexed by class id (0..999).
LABELS: Tuple[str, ...] = _read_labels()

#: The class ids this lesson talks about. The source lesson listed 157 as "Siberian husky" and
#: 918 as "street sign"; they are really papillon and crossword puzzle, so the classes it meant,
#: 250 and 919, are here too.
LESSON_CLASSES: Tuple[int, ...] = (157, 162, 245, 250, 281, 285, 360, 537, 799, 918, 919)


def check_class_id(class_id: object, num_classes: int = NUM_CLASSES) -> int:
    """Return ``class_id`` as a plain int, or raise if it is not a class id.

    Accepts Python and numpy integers, and an integer tensor or array holding one value
    (``logits.argmax(1)`` for one image); refuses bools, floats, strings and ids out of range.

    >>> check_class_id(245)
    245
    """
    import numbers

    class_id = _one_value(class_id)
    if isinstance(class_id, bool) or not isinstance(class_id, numbers.Integral):
        imagenet = " (an ImageNet class id)" if num_classes == NUM_CLASSES else ""
        raise TypeError(
            f"class_id must be an int in 0..{num_classes - 1}{imagenet}, "
            f"got {class_id!r} of type {type(class_id).__name__}"
        )
    value = int(class_id)
    if not 0 <= value < num_classes:
        raise ValueError(f"class_id must be an int in 0..{num_classes - 1}, got {value}")
    return value


def _one_value(class_id: object) -> object:
    """The value of a one-element integer tensor or numpy array (``tensor([245])``); anything else as it is."""
    if hasattr(class_id, "reshape") and "int" in str(getattr(class_id, "dtype", "")):
        flat = class_id.reshape(-1)
        if len(flat) == 1:
            return int(flat[0])
        raise ValueError(f"class_id must be one class id, got a {type(class_id).__name__} of {len(flat)} values; "
                         f"for a batch, give compute_cams one id per image")
    return class_id


def class_name(class_id: int) -> str:
    """``"245 · French bulldog"``: a class id with its name, as the lesson prints them.

    >>> class_name(281)
    '281 · tabby'
    """
    class_id = check_class_id(class_id)
    return f"{class_id} · {LABELS[class_id]}"


def find_classes(text: str) -> List[int]:
    """The ids of every class whose name contains ``text`` (ignoring case).

    >>> [LABELS[i] for i in find_classes("bulldog")]
    ['French bulldog']
    """
    if not isinstance(text, str):
        raise TypeError(f"find_classes needs a piece of a class name as a str, got {type(text).__name__}")
    needle = text.strip().casefold()
    if not needle:
        return []
    return [i for i, name in enumerate(LABELS) if needle in name.casefold()]


#: ImageNet's domestic cats: 281 (tabby) to 285 (Egyptian cat).
CAT_CLASSES: Tuple[int, ...] = tuple(range(281, 286))
#: ImageNet's dog breeds: 151 (Chihuahua) to 268 (Mexican hairless).
DOG_CLASSES: Tuple[int, ...] = tuple(range(151, 269))


def most_probable(probabilities: Sequence[float], among: Iterable[int]) -> int:
    """The class of ``among`` that the model gives the highest probability (or logit).

    ``probabilities`` holds one number per class (a tensor, array or list). Use it to pick a
    class the model believes in, rather than one typed from memory:

    >>> p = [0.0] * 1000; p[282] = 0.013; p[281] = 0.003
    >>> class_name(most_probable(p, CAT_CLASSES))
    '282 · tiger cat'
    """
    ids = [check_class_id(c, len(probabilities)) for c in among]
    if not ids:
        raise ValueError("among is empty: give the class ids to choose from, such as CAT_CLASSES")
    return max(ids, key=lambda c: float(probabilities[c]))
