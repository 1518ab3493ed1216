"""learners/reference.md: every helper paired with its pytorch-grad-cam, Captum or plain-PyTorch
equivalent (issue 17). Each block that names the helper call it replaces (``# helpers: NAME = CALL``)
runs here, on the CPU, and must give what the helper gives."""

from __future__ import annotations

import copy
import re
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = (ROOT / "learners" / "reference.md").read_text()
HEADER = re.compile(r"^# helpers(?P<resnet> \(ResNet-50\))?: (?P<name>\w+) = (?P<call>.+)$", flags=re.M)
BLOCKS = [block for block in re.findall(r"```python\n(.*?)```", REFERENCE, flags=re.S) if HEADER.match(block)]


def _helpers_namespace():
    import helpers
    from helpers import claims, trust

    names = {name: getattr(helpers, name) for name in helpers.__all__}
    names.update({name: getattr(trust, name) for name in ("saliency", "guided_backprop", "edge_map", "spearman",
                                                          "randomised_model", "deletion_curve", "score_along_path")})
    names.update({"share_in": claims.share_in, "torch": torch, "np": np})
    return names


def _same(ours, theirs, name):
    if isinstance(ours, torch.nn.Module):
        mine, other = ours.state_dict(), theirs.state_dict()
        assert mine.keys() == other.keys()
        assert all(torch.equal(mine[k], other[k]) for k in mine), f"{name}: the weights differ"
        return
    if isinstance(ours, (list, tuple)) and ours and isinstance(ours[0], str):
        assert list(ours) == list(theirs), f"{name}: the names differ"
        return
    ours = ours.detach().cpu().numpy() if isinstance(ours, torch.Tensor) else np.asarray(ours)
    theirs = theirs.detach().cpu().numpy() if isinstance(theirs, torch.Tensor) else np.asarray(theirs)
    assert ours.shape == theirs.shape, f"{name}: shape {theirs.shape}, the helper's {ours.shape}"
    if ours.dtype == np.uint8:             # a picture: OpenCV's inferno and brightness scaling differ a little
        assert np.abs(ours.astype(float) - theirs.astype(float)).mean() <= 8, f"{name}: the pictures differ"
        return
    assert np.abs(ours.astype(float) - theirs.astype(float)).max() <= 0.02 * max(1.0, float(np.abs(ours).max())), \
        f"{name}: largest difference {np.abs(ours.astype(float) - theirs.astype(float)).max():.3g}"


def test_the_reference_pairs_the_helpers_the_episodes_call():
    headers = [HEADER.match(block) for block in BLOCKS]
    calls = " ".join(h.group("call") for h in headers)
    for helper in ("load_image", "gradcam", "overlay", "share_in", "spearman", "most_probable", "saliency",
                   "guided_backprop", "edge_map", "score_along_path", "randomised_model", "deletion_curve",
                   "compute_cams", "LABELS", "stretch=False"):
        assert helper in calls, f"learners/reference.md has no block for {helper}"
    assert len(BLOCKS) >= 15


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: HEADER.match(b).group("call")[:48])
def test_each_block_gives_what_the_helper_gives(block, stand_in, random_resnet, both, mirror, monkeypatch):
    from helpers import default_target_layers, gradcam

    header = HEADER.match(block)
    model = copy.deepcopy(random_resnet if header.group("resnet") else stand_in).eval()
    input_tensor, rgb_image = both
    target_layers = default_target_layers(model)
    given = {"model": model, "target_layers": target_layers, "input_tensor": input_tensor.clone(),
             "rgb_image": rgb_image.copy(), "heatmap": gradcam(model, target_layers, 243, input_tensor)}
    monkeypatch.chdir(mirror)                             # the blocks open "both.png" by name
    theirs = dict(given)
    exec(compile(block, "learners/reference.md", "exec"), theirs)
    # the helper call may use what the block made (a model of its own, a mask), never its result
    made = {name: value for name, value in theirs.items() if name != header.group("name") and name not in given}
    ours = {**made, **_helpers_namespace(), **given}
    _same(eval(header.group("call"), ours), theirs[header.group("name")], header.group("call"))


@pytest.mark.parametrize("width, height", [(1000, 750), (640, 427), (337, 250), (4000, 100), (224, 224)])
def test_the_preprocessing_block_agrees_with_load_image_on_non_square_photos(width, height, tmp_path, monkeypatch):
    """Issue 24: torchvision's Resize(224) truncates where load_image rounds (224x298 against 224x299
    for 1000x750), and load_image caps the long side at 1024 px (26x1024 for a 4000x100 panorama)."""
    from PIL import Image

    from helpers import load_image

    block = next(b for b in BLOCKS if HEADER.match(b).group("call").startswith("load_image("))
    pixels = np.random.default_rng(width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "both.png")
    monkeypatch.chdir(tmp_path)
    theirs = {}
    exec(compile(block, "learners/reference.md", "exec"), theirs)
    ours, rgb = load_image(tmp_path / "both.png")
    assert tuple(theirs["input_tensor"].shape) == tuple(ours.shape)
    assert torch.abs(theirs["input_tensor"] - ours).max() < 1e-5 and np.abs(theirs["rgb_image"] - rgb).max() < 1e-6
    if (width, height) == (4000, 100):
        assert tuple(ours.shape[-2:]) == (26, 1024)


def test_the_take_home_pip_line_installs_every_import_and_one_opencv():
    """Issue 24: the packages of the route without the helpers, with one OpenCV package (grad-cam's own)."""
    import ast
    from importlib.metadata import requires

    line = re.search(r"```bash\n(pip install [^\n]+)\n```", REFERENCE).group(1)
    packages = set(line.split()[2:])
    assert "opencv-python" not in packages and "opencv-python-headless" in packages
    assert any(r.startswith("opencv-python-headless") for r in requires("grad-cam"))
    assert not any(re.match(r"opencv-python(?!-headless)", r) for r in requires("grad-cam"))
    home = {"numpy": "torch", "PIL": "torchvision", "torch": "torch", "torchvision": "torchvision",
            "pytorch_grad_cam": "grad-cam", "captum": "captum", "scipy": "scipy", "cv2": "opencv-python-headless",
            "matplotlib": "matplotlib", "copy": None}
    imported = set()
    for block in re.findall(r"```python\n(.*?)```", REFERENCE, flags=re.S):
        for node in ast.walk(ast.parse(block)):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                imported.add(node.module.split(".")[0])
    assert imported <= set(home), f"reference.md imports {imported - set(home)}, which the pip line does not name"
    assert {home[name] for name in imported if home[name]} <= packages
