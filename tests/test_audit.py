"""helpers.audit: a table for a whole dataset, resumable, sharded, with regions and a contact sheet.

Tiny models on tiny images, so every test runs in a second or two: ``tiny()``, a small CNN with
BatchNorm, and ``Spot()``, whose GradCAM of class 0 at ``model.layer`` (the input itself) is the
image's brightness, so its peak and its share in a region are known in advance.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image
from torch import nn

from helpers.audit import SCHEMA, audit, load_maps, main, read_table
from helpers.audit_data import parse_shard, scaling_for, shard_path, shard_positions
from helpers.audit_regions import Regions
from helpers.audit_sheet import REASONS, contact_sheet, suspects
from helpers.cam import gradcam

ROOT = Path(__file__).resolve().parent.parent
SIZE = 30


def tiny(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(OrderedDict([
        ("conv1", nn.Conv2d(3, 4, 3, padding=1)), ("bn", nn.BatchNorm2d(4)), ("relu1", nn.ReLU()),
        ("conv2", nn.Conv2d(4, 4, 3, padding=1)), ("relu2", nn.ReLU()),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()), ("fc", nn.Linear(4, 2)),
    ])).eval()


class Spot(nn.Module):
    """Class 0's score is the mean brightness, class 1's its opposite: GradCAM of class 0 at ``layer``
    (the input) is the normalised image's channel sum, positive where the image is bright."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = nn.Identity()
        self.fc = nn.Linear(3, 2)
        with torch.no_grad():
            self.fc.weight.copy_(torch.tensor([[1.0, 1.0, 1.0], [-1.0, -1.0, -1.0]]))
            self.fc.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.layer(x).mean(dim=(2, 3)))


def spot_image(path: Path, x: int, y: int, width: int = 60, height: int = 40) -> Path:
    """A black image with a white 4x4 spot whose top-left corner is at (x, y)."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[y:y + 4, x:x + 4] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture
def folder(tmp_path) -> Path:
    """Two class folders of four random images each, and a file that is not an image under a .jpg name."""
    rng = np.random.default_rng(0)
    root = tmp_path / "images"
    for name in ("cat", "dog"):
        (root / name).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(root / name / f"{i}.png")
    (root / "dog" / "broken.jpg").write_bytes(b"this is not a JPEG")
    (root / "dog" / "notes.txt").write_text("not an image, and not listed")
    return root


class Counter:
    """Counts the images each forward pass of ``model`` sees at the audit's size (not the dry run's)."""

    def __init__(self, model: nn.Module, stop_after: int = 0) -> None:
        self.images, self.stop_after = 0, stop_after
        self.handle = model.register_forward_pre_hook(self)

    def __call__(self, module, inputs):
        if inputs[0].shape[-1] == SIZE:
            if self.stop_after and self.images >= self.stop_after:
                raise KeyboardInterrupt                 # as Ctrl-C would, in the middle of a batch
            self.images += inputs[0].shape[0]


def without_files(table: pd.DataFrame) -> pd.DataFrame:
    return table.drop(columns="map_file").reset_index(drop=True)


def test_a_folder_with_a_corrupt_file_gives_a_row_with_its_error(folder):
    table = audit(tiny(), folder, target_layers=None, size=SIZE, batch_size=3, progress=False)
    assert list(table.columns) == list(SCHEMA)
    assert list(table.image) == ["cat/0.png", "cat/1.png", "cat/2.png", "cat/3.png",
                                 "dog/0.png", "dog/1.png", "dog/2.png", "dog/3.png", "dog/broken.jpg"]
    broken = table.set_index("image").loc["dog/broken.jpg"]
    assert broken.error == "ValueError: dog/broken.jpg is not an image that Pillow can read (18 bytes)"
    assert pd.isna(broken.predicted) and pd.isna(broken.correct) and broken.label == 1
    good = table[table.error == ""]
    assert len(good) == 8
    assert list(good.label) == [0] * 4 + [1] * 4 and list(good.label_name) == ["cat"] * 4 + ["dog"] * 4
    assert (good.correct == (good.predicted == good.label)).all()
    assert good.probability.between(0.5, 1.0).all()                  # the top class of two
    assert (good.target == good.predicted).all()                     # target="prediction"
    assert good.peak_x.between(0, 32).all() and good.peak_y.between(0, 24).all()
    assert (good.width == 32).all() and (good.height == 24).all()
    assert good.region_share.isna().all()                            # no regions given
    assert set(table.layer) == {"relu2"} and set(table.method) == {"GradCAM"}   # the default: the last block


def test_peak_strength_and_region_share_are_those_of_the_map(tmp_path):
    model = Spot()
    spot_image(tmp_path / "images" / "a.png", x=40, y=8)             # the spot's centre: (42, 10)
    spot_image(tmp_path / "images" / "b.png", x=4, y=30)             # (6, 32)
    table = audit(model, tmp_path / "images", [model.layer], target=0, size=SIZE, progress=False,
                  regions=pd.DataFrame({"image": ["a.png", "b.png"], "left": [36, 30], "top": [4, 0],
                                        "right": [48, 60], "bottom": [16, 20]}))
    a, b = table.itertuples()
    assert abs(a.peak_x - 42) <= 2.5 and abs(a.peak_y - 10) <= 2.5
    assert abs(b.peak_x - 6) <= 2.5 and abs(b.peak_y - 32) <= 2.5
    # the unstretched peak is gradcam's stretch=False maximum for the same input
    x = scaling_for(model, SIZE)(Image.open(tmp_path / "images" / "a.png"))[None]
    assert a.peak_value == pytest.approx(float(gradcam(model, [model.layer], 0, x, stretch=False).max()), rel=1e-5)
    # a's box holds its spot: nearly all the map; b's box (the top right) holds none of it
    assert a.region_share > 0.95 and b.region_share < 0.01
    assert a.region_area == pytest.approx(12 / 60 * 12 / 40, abs=0.02)      # a uniform map's share
    assert b.region_area == pytest.approx(30 / 60 * 20 / 40, abs=0.02)
    assert list(table.target) == [0, 0]


def test_regions_from_a_csv_and_from_a_folder_of_masks_agree(tmp_path):
    model = Spot()
    images = tmp_path / "images"
    spot_image(images / "x" / "a.png", x=40, y=8)
    spot_image(images / "x" / "b.png", x=4, y=30)
    boxes = tmp_path / "boxes.csv"
    boxes.write_text("image,left,top,right,bottom\nx/a.png,36,4,48,16\nx/b.png,0,20,30,40\nx/b.png,30,0,60,20\n")
    masks = tmp_path / "masks" / "x"
    masks.mkdir(parents=True)
    for name, rectangles in (("a", [(36, 4, 48, 16)]), ("b", [(0, 20, 30, 40), (30, 0, 60, 20)])):
        mask = np.zeros((40, 60), dtype=np.uint8)
        for left, top, right, bottom in rectangles:
            mask[top:bottom, left:right] = 255
        Image.fromarray(mask).save(masks / f"{name}.png")
    from_csv = audit(model, images, [model.layer], target=0, size=SIZE, regions=boxes, progress=False)
    from_masks = audit(model, images, [model.layer], target=0, size=SIZE, regions=tmp_path / "masks", progress=False)
    # b's two boxes make one region (the bottom left, with its spot, and the top right): half the image
    assert list(from_csv.region_area.round(2)) == [0.06, 0.5]
    assert np.allclose(from_csv.region_area, from_masks.region_area, atol=0.02)
    assert np.allclose(from_csv.region_share, from_masks.region_share, atol=0.05)
    assert (from_csv.region_share > 0.95).all()
    # a mask folder or CSV without a row for an image: no share, not a wrong one
    partial = audit(model, images, [model.layer], target=0, size=SIZE, progress=False,
                    regions=pd.DataFrame({"image": ["x/a.png"], "left": [36], "top": [4], "right": [48], "bottom": [16]}))
    assert not pd.isna(partial.region_share[0]) and pd.isna(partial.region_share[1])
    with pytest.raises(ValueError, match="no column bottom"):
        Regions.read(pd.DataFrame({"image": ["a"], "left": [0], "top": [0], "right": [1]}))


def test_a_resume_after_an_interrupted_run_recomputes_nothing_done(folder, tmp_path):
    out = tmp_path / "results.parquet"
    model = tiny()
    first = Counter(model, stop_after=6)                         # Ctrl-C during the third batch of 3
    with pytest.raises(KeyboardInterrupt):
        audit(model, folder, size=SIZE, batch_size=3, out=out, progress=False, save_every=3600)
    first.handle.remove()
    saved = read_table(out)
    assert first.images == 6 and len(saved) == 6                   # what was done is kept, atomically
    assert list(saved.image) == ["cat/0.png", "cat/1.png", "cat/2.png", "cat/3.png", "dog/0.png", "dog/1.png"]
    second = Counter(model)
    table = audit(model, folder, size=SIZE, batch_size=3, out=out, progress=False)
    second.handle.remove()
    assert second.images == 2                                      # dog/2 and dog/3 only; broken.jpg has no pass
    assert len(table) == 9 and len(read_table(out)) == 9
    third = Counter(model)
    again = audit(model, folder, size=SIZE, batch_size=3, out=out, progress=False)
    assert third.images == 0 and len(again) == 9                   # all done: only the error row is read again
    whole = audit(tiny(), folder, size=SIZE, batch_size=3, progress=False)
    pd.testing.assert_frame_equal(without_files(table), without_files(whole), check_exact=False, rtol=1e-5)


def test_two_shards_merge_to_the_full_table(folder, tmp_path):
    model = tiny()
    out = tmp_path / "results.csv"
    shards = [audit(model, folder, size=SIZE, batch_size=2, out=out, shard=f"{k}/2", progress=False) for k in (0, 1)]
    assert (tmp_path / "results-shard0of2.csv").is_file() and (tmp_path / "results-shard1of2.csv").is_file()
    assert not set(shards[0].image) & set(shards[1].image)
    merged = pd.concat([read_table(tmp_path / f"results-shard{k}of2.csv") for k in (0, 1)]).sort_values("index")
    whole = audit(model, folder, size=SIZE, batch_size=4, progress=False)
    assert len(merged) == len(whole) == 9
    pd.testing.assert_frame_equal(without_files(merged), without_files(whole), check_exact=False, rtol=1e-4)


def test_shards_are_numbered_from_zero_and_cover_everything():
    assert sorted(sum((shard_positions(10, (k, 3)) for k in range(3)), [])) == list(range(10))
    assert parse_shard("3/16") == (3, 16) and parse_shard(None) is None
    with pytest.raises(ValueError, match="--array=0-15 and --shard \\$SLURM_ARRAY_TASK_ID/16"):
        parse_shard("16/16")
    with pytest.raises(ValueError, match="K/N"):
        parse_shard("three of 16")
    assert shard_path("out/results.parquet", (3, 16)).name == "results-shard03of16.parquet"


def test_the_callers_model_is_left_as_it_was(folder):
    model = tiny().train()                                         # in training mode, as a caller may leave it
    model.fc.weight.requires_grad_(False)
    hook = model.register_forward_hook(lambda *args: None)
    before = copy.deepcopy(model.state_dict())
    audit(model, folder, [model.conv2], size=SIZE, batch_size=4, progress=False, device="cpu")
    assert model.training and all(m.training for m in model.modules())
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)   # weights and BatchNorm statistics
    assert list(model._forward_hooks) == [hook.id] and not any(m._forward_hooks for m in model.modules() if m is not model)
    assert all(p.grad is None for p in model.parameters())
    assert not model.fc.weight.requires_grad and model.conv1.weight.requires_grad


def test_a_dataset_and_a_dataloader_give_the_same_table():
    torch.manual_seed(1)
    images, labels = torch.randn(7, 3, SIZE, SIZE), torch.tensor([0, 1, 0, 1, 0, 1, -1])
    dataset = torch.utils.data.TensorDataset(images, labels)
    model = tiny()
    from_dataset = audit(model, dataset, [model.conv2], batch_size=3, progress=False, class_names=["cat", "dog"])
    assert list(from_dataset.image) == [str(i) for i in range(7)]
    assert list(from_dataset.label.astype(object).fillna(-1)) == [0, 1, 0, 1, 0, 1, -1]   # -1: no label
    assert pd.isna(from_dataset.correct[6]) and set(from_dataset.predicted_name) <= {"cat", "dog"}
    loader = torch.utils.data.DataLoader(dataset, batch_size=2)
    from_loader = audit(model, loader, [model.conv2], batch_size=3, progress=False, class_names=["cat", "dog"])
    pd.testing.assert_frame_equal(from_loader, from_dataset, check_exact=False, rtol=1e-5)
    shuffled = torch.utils.data.DataLoader(dataset, batch_size=2, shuffle=True)
    with pytest.raises(ValueError, match=r"audit\(model, loader.dataset\)") as error:
        audit(model, shuffled, [model.conv2], progress=False)
    # the advice, run: the Dataset itself
    assert len(audit(model, shuffled.dataset, [model.conv2], progress=False)) == 7
    assert "shuffle=False" in str(error.value)


def test_a_dataloaders_shards_merge_too(tmp_path):
    images = torch.randn(9, 3, SIZE, SIZE)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(images, torch.zeros(9, dtype=torch.long)),
                                         batch_size=2)
    model = tiny()
    shards = [audit(model, loader, [model.conv2], shard=(k, 2), progress=False) for k in (0, 1)]
    assert list(shards[0].image) == ["0", "1", "4", "5", "8"] and list(shards[1].image) == ["2", "3", "6", "7"]
    whole = audit(model, loader, [model.conv2], progress=False)
    merged = pd.concat(shards).sort_values("index").reset_index(drop=True)
    pd.testing.assert_frame_equal(merged, whole, check_exact=False, rtol=1e-5)


class Flaky(torch.utils.data.Dataset):
    """Four images, of which the third cannot be loaded."""

    def __len__(self) -> int:
        return 4

    def __getitem__(self, i: int):
        if i == 2:
            raise OSError("disk error reading item 2")
        return torch.ones(3, SIZE, SIZE) * i, i % 2


def test_a_dataset_item_that_fails_becomes_a_row_with_its_error():
    model = tiny()
    table = audit(model, Flaky(), [model.conv2], progress=False)
    assert list(table.error) == ["", "", "OSError: disk error reading item 2", ""]
    assert table.predicted.isna().tolist() == [False, False, True, False]


def test_targets_label_and_class_id(folder, tmp_path):
    model = tiny()
    by_label = audit(model, folder, size=SIZE, target="label", progress=False)
    good = by_label[by_label.error == ""]
    assert list(good.target) == list(good.label)
    by_id = audit(model, folder, size=SIZE, target=1, progress=False)
    assert set(by_id.target.dropna()) == {1} and set(by_id.target_name.replace("", None).dropna()) == {"dog"}
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("cat/0.png", "dog/1.png"):
        (flat / name.replace("/", "-")).write_bytes((folder / name).read_bytes())
    with pytest.raises(ValueError, match="use target='prediction'"):
        audit(model, flat, size=SIZE, target="label", progress=False)
    table = audit(model, flat, size=SIZE, target="prediction", progress=False)      # the advice, run
    assert table.label.isna().all() and table.correct.isna().all() and len(table) == 2
    with pytest.raises(ValueError, match="target is 'prediction', 'label', a class id"):
        audit(model, flat, target="dog", progress=False)


def test_an_out_file_of_another_audit_is_not_mixed_in(folder, tmp_path):
    model = tiny()
    out = tmp_path / "results.parquet"
    audit(model, folder, [model.conv2], size=SIZE, out=out, progress=False)
    with pytest.raises(ValueError, match="layer conv2, not conv1: pass another out="):
        audit(model, folder, [model.conv1], size=SIZE, out=out, progress=False)
    other = audit(model, folder, [model.conv1], size=SIZE, out=tmp_path / "conv1.parquet", progress=False)
    assert set(other.layer) == {"conv1"} and set(read_table(out).layer) == {"conv2"}


def test_maps_are_saved_on_request_as_small_float16_grids(folder, tmp_path):
    model = tiny()
    out = tmp_path / "results.parquet"
    table = audit(model, folder, size=SIZE, out=out, save_maps=True, map_size=8, progress=False)
    maps = load_maps(table, tmp_path / "results-maps")
    assert sorted(maps) == sorted(table.loc[table.error == "", "image"])
    first = maps["cat/0.png"]
    assert first.dtype == np.float16 and first.shape == (8, 8)
    # the unstretched map (gradcam's stretch=False) averaged over 8x8 cells
    x = scaling_for(model, SIZE)(Image.open(folder / "cat" / "0.png"))[None]
    whole = torch.from_numpy(gradcam(model, [model.relu2], None, x, stretch=False))
    expected = torch.nn.functional.adaptive_avg_pool2d(whole[None, None], (8, 8))[0, 0].numpy()
    assert np.allclose(first.astype(np.float32), expected, rtol=2e-3, atol=1e-7)
    assert audit(model, folder, size=SIZE, progress=False).map_file.eq("").all()    # not saved unless asked
    with pytest.raises(ValueError, match="pass out='results.parquet', or save_maps='a folder'"):
        audit(model, folder, size=SIZE, save_maps=True, progress=False)
    audit(model, folder, size=SIZE, save_maps=tmp_path / "maps", progress=False)     # the advice, run
    assert len(list((tmp_path / "maps").glob("*.npz"))) == 1


def test_suspects_put_wrong_predictions_first_then_evidence_outside_then_weak_maps():
    table = pd.DataFrame({
        "index": range(6), "image": list("abcdef"), "error": ["", "", "", "", "", "broken"],
        "correct": pd.array([True, False, True, True, False, None], dtype="boolean"),
        "probability": [0.99, 0.6, 0.7, 0.98, 0.9, np.nan],
        "peak_value": [0.05, 1.0, 1.0, 1.0, 1.0, np.nan],
        "region_share": [0.5, 0.1, 0.1, 0.5, 0.4, np.nan], "region_area": [0.2, 0.5, 0.4, 0.3, 0.2, np.nan]})
    chosen = suspects(table, n=10)
    # e and b are wrong (e the more confident), c's share is below chance, a is confident with a weak map
    assert list(chosen.image) == ["e", "b", "c", "a"]
    assert list(chosen.reason) == [REASONS[0], REASONS[0], REASONS[1], REASONS[2]]
    assert list(suspects(table, n=2).image) == ["e", "b"]


def test_the_contact_sheet_shows_the_wrong_predictions_first(folder, tmp_path):
    model = tiny()
    table = audit(model, folder, size=SIZE, progress=False)
    wrong = list(table.loc[table.correct.isin([False]), "image"])
    assert wrong, "the tiny model should get some of these random images wrong"
    figure = contact_sheet(table, model, folder, n=6, size=SIZE)
    titles = [ax.get_title() for ax in figure.axes if ax.get_title()]
    shown = [title.splitlines()[0].split(": ", 1)[1] for title in titles]
    assert shown[:len(wrong)] == list(suspects(table, 6).image)[:len(wrong)]
    assert set(shown[:len(wrong)]) == set(wrong[:6])
    assert all("wrong prediction" in title for title in titles[:len(wrong)])
    figure.savefig(tmp_path / "sheet.png")
    assert Image.open(tmp_path / "sheet.png").size[0] > 600


def test_the_command_line_end_to_end(folder, tmp_path, capsys):
    """Shard 0 in a subprocess, stopped by SIGTERM as a cluster's scheduler stops a job; then shard 0
    resumed, shard 1, and the merged table's contact sheet, through the same main() in this process."""
    (tmp_path / "tinymodels.py").write_text(textwrap.dedent("""
        import sys, time
        sys.path.insert(0, %r)
        from test_audit import tiny

        def build():
            return tiny()

        def build_slow():                       # the same model, half a second per batch
            model = tiny()
            model.register_forward_pre_hook(lambda module, inputs: time.sleep(0.5))
            return model
    """ % str(ROOT / "tests")))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(tmp_path)])}
    out = tmp_path / "results-shard0of2.csv"
    command = [sys.executable, "-m", "helpers.audit", str(folder), "--out", str(tmp_path / "results.csv"),
               "--model", "tinymodels:build", "--layer", "conv2", "--size", str(SIZE), "--batch-size", "1",
               "--no-progress"]
    slow = command[:7] + ["tinymodels:build_slow"] + command[8:] + ["--shard", "0/2", "--save-every", "0"]
    process = subprocess.Popen(slow, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 240
        while not (out.is_file() and len(read_table(out)) >= 1) and time.monotonic() < deadline \
                and process.poll() is None:
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130, stderr
    assert "stopped:" in stderr and "run the same call again" in stderr
    kept = read_table(out)
    assert 1 <= len(kept) < 5 and set(kept.image) <= {"cat/0.png", "cat/2.png", "dog/0.png", "dog/2.png",
                                                      "dog/broken.jpg"}
    sys.path.insert(0, str(tmp_path))
    try:
        assert main(command[3:] + ["--shard", "0/2"]) == 0              # resumed: the rest of shard 0
        assert f"5 images in {out}" in capsys.readouterr().out
        assert main(command[3:] + ["--shard", "1/2"]) == 0
        assert "4 images in" in capsys.readouterr().out
        merged = pd.concat([read_table(tmp_path / f"results-shard{k}of2.csv") for k in (0, 1)]).sort_values("index")
        assert len(merged) == 9 and set(merged.layer) == {"conv2"}
        assert merged.set_index("image").loc["dog/broken.jpg", "error"] != ""
        # the merged table: a run with nothing left to do, drawing the sheet
        merged.to_csv(tmp_path / "merged.csv", index=False)
        sheet = tmp_path / "sheet.png"
        assert main(command[3:5] + [str(tmp_path / "merged.csv")] + command[6:] + ["--sheet", str(sheet)]) == 0
    finally:
        sys.path.remove(str(tmp_path))
    printed = capsys.readouterr()
    assert "9 images in" in printed.out and "1 could not be read or explained" in printed.out
    assert Image.open(sheet).size[0] > 600
    assert main(command[3:] + ["--shard", "2/2"]) == 2
    assert "shards are numbered from 0 to 1" in capsys.readouterr().err


def test_any_target_helpers_take_a_target_object_or_a_function(folder):
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = tiny()
    by_id = audit(model, folder, size=SIZE, target=1, progress=False)
    by_object = audit(model, folder, size=SIZE, target=ClassifierOutputTarget(1), progress=False)
    good = by_object.error == ""
    assert by_object.target.isna().all() and set(by_object.target_name[good]) == {"ClassifierOutputTarget(1)"}
    assert set(by_object.explained) == {"ClassifierOutputTarget(1)"} and set(by_id.explained) == {"class 1"}
    assert np.allclose(by_object.peak_value[good], by_id.peak_value[good], rtol=1e-5)
    assert np.allclose(by_object.score[good], by_id.score[good], rtol=1e-5)       # the logit of class 1
    difference = audit(model, folder, size=SIZE, target=lambda output: output[1] - output[0], progress=False)
    x = scaling_for(model, SIZE)(Image.open(folder / "cat" / "0.png"))[None]
    with torch.no_grad():
        logits = model(x)[0]
    assert difference.score[0] == pytest.approx(float(logits[1] - logits[0]), rel=1e-4)
    expected = gradcam(model, [model.relu2], lambda output: output[1] - output[0], x, stretch=False).max()
    assert difference.peak_value[0] == pytest.approx(float(expected), rel=1e-5)
    assert difference.target_name[0] == "your target (a lambda)"
    figure = contact_sheet(difference, model, folder, n=4, size=SIZE, target=lambda output: output[1] - output[0])
    assert any("map of your target (a lambda)" in ax.get_title() for ax in figure.axes)


class Segmenter(nn.Module):
    """Scores per pixel (``{"out": [N, 2, H, W]}``, as torchvision's segmentation models): no class scores."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Conv2d(3, 4, 3, padding=1)
        self.head = nn.Conv2d(4, 2, 1)

    def forward(self, x: torch.Tensor) -> dict:
        return {"out": self.head(torch.relu(self.body(x)))}


def test_a_model_without_class_scores_is_audited_for_a_target_of_its_output(folder):
    model = Segmenter().eval()
    target = lambda output: output[1].mean()                                     # noqa: E731
    table = audit(model, folder, [model.body], target=target, size=SIZE, progress=False)
    good = table[table.error == ""]
    assert len(good) == 8 and good.predicted.isna().all() and good.probability.isna().all()
    x = scaling_for(model, SIZE)(Image.open(folder / "cat" / "0.png"))[None]
    with torch.no_grad():
        expected = float(model(x)["out"][0, 1].mean())
    assert good.score.iloc[0] == pytest.approx(expected, rel=1e-4)
    assert set(good.target_name) == {"your target (a lambda)"}
    # the prediction of a model that gives no class scores cannot be explained: the set-up's error, at once
    with pytest.raises(ValueError, match="target"):
        audit(model, folder, [model.body], size=SIZE, progress=False)


class OneBad(torch.utils.data.Dataset):
    """Five images of one size; the fourth holds a NaN, which makes the whole batch's input refused."""

    def __len__(self) -> int:
        return 5

    def __getitem__(self, i: int):
        image = torch.full((3, SIZE, SIZE), float(i))
        if i == 3:
            image[0, 5, 5] = float("nan")
        return image, 0


def test_an_image_the_model_cannot_take_fails_alone_not_its_batch():
    model = tiny()
    table = audit(model, OneBad(), [model.conv2], batch_size=5, progress=False)
    assert (table.error == "").tolist() == [True, True, True, False, True]
    assert "NaN" in table.error[3] and table.predicted.notna().sum() == 4
