"""The lesson's claims as code (issue 8): where a map peaks, the region data, and the pre-flight."""

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import default_target_layers, gradcam, lesson_images
from helpers.claims import CLAIMS, Lab, check_claims, peak, preflight, regions, share_in, where

ROOT = Path(__file__).resolve().parent.parent
DOG_AND_CAT = [c.name for c in CLAIMS if re.search(r"\b(dog|cat)\b", c.name)]


def _spot(height, width, x, y):
    cam = np.zeros((height, width), np.float32)
    cam[int(y * height), int(x * width)] = 1.0
    return cam


@pytest.mark.parametrize("size", [(224, 224), (448, 448), (57, 91)])
def test_where_names_the_region_under_the_peak_at_any_size(size):
    height, width = size
    assert where(_spot(height, width, 0.55, 0.2), "both.png") == "peak: top centre (on the dog)"
    assert where(_spot(height, width, 0.5, 0.9), "both.png") == "peak: bottom centre (on the cat)"
    assert where(_spot(height, width, 0.1, 0.2), "both.png") == "peak: top left (on the glass door)"
    assert where(_spot(height, width, 0.7, 0.68), "both.png").endswith("(on the cat)")     # cat's head before the dog
    # between the glass door and the dog: on no region, and said to be near one
    gap = where(_spot(height, width, 0.3, 0.03), "both.png")
    assert gap.startswith("peak: top left (on no marked region, but near")


def test_where_on_the_other_images_and_blank_maps():
    assert where(_spot(224, 340, 0.7, 0.55), "horses.jpg") == "peak: middle right (on the horse (right))"
    assert where(_spot(224, 340, 0.2, 0.8), "horses.jpg") == "peak: bottom left (on the fence and grass)"
    assert where(_spot(224, 359, 0.25, 0.5), "dog_cat.jfif") == "peak: middle left (on the dog)"
    blank = "no peak: the map is blank (no position has positive evidence)"
    assert where(np.zeros((7, 7), np.float32), "both.png") == blank
    assert where(np.full((7, 7), 0.3, np.float32), "both.png") == blank
    assert peak(_spot(10, 10, 0.0, 0.95)) == pytest.approx((0.05, 0.95))
    with pytest.raises(KeyError, match="both.png"):
        where(_spot(10, 10, 0.5, 0.5), "my_photo.jpg")
    with pytest.raises(ValueError, match="2-D"):
        where(np.zeros((1, 7, 7)), "both.png")


def test_every_lesson_image_has_sane_regions():
    assert set(lesson_images()) <= {"both.png", "dog_cat.jfif", "dogs.png", "horses.jpg"}
    for name in lesson_images():
        named = regions(name)
        assert len(named) >= 3
        for boxes in named.values():
            for left, top, right, bottom in boxes:
                assert 0 <= left < right <= 1 and 0 <= top < bottom <= 1
    assert {"dog", "cat", "glass door"} <= set(regions("both.png"))


def test_share_in_a_region():
    cam = np.zeros((100, 100), np.float32)
    cam[80:, 30:60] = 1.0                               # inside the cat's body box of both.png
    assert share_in(cam, "both.png", "cat") == pytest.approx(1.0)
    assert share_in(cam, "both.png", "dog") == 0.0
    assert share_in(np.zeros((10, 10)), "both.png", "cat") == 0.0


def test_the_stand_ins_peaks_on_the_lesson_photo(stand_in, both):
    x, _ = both
    layers = default_target_layers(stand_in)
    assert where(gradcam(stand_in, layers, 243, x), "both.png") == "peak: centre (on the dog)"     # bull mastiff
    assert where(gradcam(stand_in, layers, 281, x), "both.png") == "peak: bottom centre (on the cat)"


def page_path(name, root=ROOT):
    """A page that a claim names: an episode (episodes/NAME.md) or a self-study page (learners/NAME.md)."""
    return root / name if "/" in name else root / "episodes" / name


def sentence_problems(claims, root=ROOT):
    """What is wrong with the pages the claims name: a page missing, or the sentence not in the first."""
    problems = []
    for item in claims:
        files = [name.strip() for name in item.episode.split(",")]
        missing = [name for name in files if not page_path(name, root).is_file()]
        if missing:
            problems.append(f"{item.name}: no page {', '.join(missing)}")
            continue
        text = " ".join(page_path(files[0], root).read_text().split())
        if " ".join(item.sentence.split()) not in text:
            problems.append(f"{item.name}: sentence not in {files[0]}")
    return problems


def test_each_claim_names_an_episode_that_holds_its_sentence():
    assert len({c.name for c in CLAIMS}) == len(CLAIMS)
    assert sentence_problems(CLAIMS) == []


def test_a_sentence_missing_from_its_page_is_caught(tmp_path):
    """The check reads the page named first (a self-study page here), across line breaks."""
    from helpers.claims import Claim

    (tmp_path / "learners").mkdir()
    (tmp_path / "episodes").mkdir()
    (tmp_path / "learners" / "x.md").write_text("---\ntitle: X\nself-study: true\n---\n\nThe map lands\non the cat.\n")
    (tmp_path / "episodes" / "01-y.md").write_text("The map lands on the dog.\n")

    def make(pages, sentence):
        return Claim("c", pages, sentence, "", lambda lab: ("", True))

    assert sentence_problems([make("learners/x.md, 01-y.md", "The map lands on the cat.")], tmp_path) == []
    assert sentence_problems([make("01-y.md, learners/x.md", "The map lands on the cat.")], tmp_path) == \
        ["c: sentence not in 01-y.md"]
    assert sentence_problems([make("learners/gone.md", "The map")], tmp_path) == ["c: no page learners/gone.md"]
    assert sentence_problems([make("x.md", "The map")], tmp_path) == ["c: no page x.md"]     # not in episodes/


def test_the_episode_table_names_files_that_exist():
    """Claims name pages through claims.EPISODES: a renumbered episode is one line to change there.
    A self-study page is named by its path in learners/, and must be a self-study page."""
    from helpers.claims import EPISODES
    from notebooks import self_study_pages

    episodes = {p.name for p in (ROOT / "episodes").glob("[0-9]*.md")}
    self_study = {f"learners/{p.name}" for p in self_study_pages()}
    assert set(EPISODES.values()) <= episodes | self_study
    assert all(item.episode.split(",")[0].strip() in EPISODES.values() for item in CLAIMS)


def test_the_self_study_pages_hold_claims_too():
    """The text moved out of the schedule took its claims along (issue 23): each self-study page
    that makes a claim is named by it, and the page's sentence is checked above."""
    named = {name.strip() for item in CLAIMS for name in item.episode.split(",")}
    assert {"learners/gradcam-in-depth.md", "learners/testing-explanations.md",
            "learners/when-gradcam-misses.md"} <= named
    first = {item.episode.split(",")[0].strip() for item in CLAIMS}
    assert {"learners/gradcam-in-depth.md", "learners/testing-explanations.md"} <= first


def test_eigencam_is_the_same_for_every_class_for_both_architectures(stand_in, random_resnet, both):
    """A claim of kind (b): true for every model, so it is tested for both architectures."""
    for model in (stand_in, random_resnet):
        observed, ok = [c for c in CLAIMS if c.name.startswith("EigenCAM")][0].check(Lab(model))
        assert ok, observed


def test_preflight_passes_with_the_stand_in(capsys):
    """What CI runs: every claim holds for the stand-in, and the table says so."""
    assert preflight("efficientnet_lite0") == 0
    out = capsys.readouterr().out
    assert "claim" in out and "observed" in out
    assert f"All {len(CLAIMS)} claims hold for efficientnet_lite0" in out
    assert "243 · bull mastiff" in out


def test_the_dog_and_cat_claims_fail_with_random_weights(capsys):
    """They are real checks: ResNet-50 with random weights sees no dog and no cat."""
    assert len(DOG_AND_CAT) == 5
    assert preflight("resnet50_untrained", names=DOG_AND_CAT) == 1
    out = capsys.readouterr().out
    assert f"{len(DOG_AND_CAT)} of {len(DOG_AND_CAT)} claims do NOT hold for resnet50_untrained" in out
    assert "reword these sentences" in out and "- 04-reading-maps.md" in out and "- 07-trust.md" in out


def test_a_claim_that_raises_is_a_failed_claim_not_a_crash():
    class Broken(torch.nn.Module):
        def forward(self, x):
            raise RuntimeError("boom")

    rows = check_claims(Broken(), ["both.png: the top class is a dog breed"])
    assert rows[0]["ok"] is False and "boom" in rows[0]["observed"]


def test_make_preflight_runs_the_claims_module():
    import subprocess
    import sys

    assert "\npreflight:" in (ROOT / "Makefile").read_text()
    out = subprocess.run([sys.executable, str(ROOT / "lesson.py"), "preflight", "--dry-run", "--model", "resnet50"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT).stdout
    assert out.rstrip().splitlines()[-1].endswith("-m helpers.claims --model resnet50")


def test_where_ignores_nan_and_inf_pixels_and_share_in_names_what_is_wrong():
    from helpers.claims import share_in, where

    cam = np.zeros((224, 224), np.float32)
    cam[40, 120] = 1.0
    expected = where(cam, "both.png")
    assert expected.startswith("peak:")
    for bad in (np.nan, np.inf, -np.inf):
        cam[0, 0] = bad
        assert where(cam, "both.png") == expected
        assert share_in(cam, "both.png", "dog") == share_in(np.where(np.isfinite(cam), cam, 0), "both.png", "dog")
    with pytest.raises(KeyError, match="its regions are cat, dog"):
        share_in(cam, "both.png", "horse")
    with pytest.raises(ValueError, match=r"\[H, W\]"):
        share_in(cam[None], "both.png", "dog")


@pytest.mark.parametrize("args, named", [(["--model", "vgg"], "unknown model 'vgg'"),
                                         (["--claim", "nope"], "no claim called 'nope'")])
def test_the_command_line_names_a_bad_model_or_claim_in_one_line(args, named, capsys):
    from helpers.claims import main

    assert main(args) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_where_says_when_a_peak_is_not_clearly_inside_one_region():
    """Issue 17: a peak at the edge between two regions is named as such, with both regions."""
    from helpers.claims import near_peak

    # both.png: the dog's box ends at y = 0.64, the cat's body box starts there (x 0.20..0.74 overlap)
    edge = _spot(224, 224, 0.45, 0.64)
    around = near_peak(edge, "both.png")
    assert set(around) == {"dog", "cat"} and max(around.values()) < 2 / 3
    assert sum(around.values()) == pytest.approx(1.0)
    text = where(edge, "both.png")
    assert text.startswith("peak: ") and "not clearly inside one region" in text
    assert "(on the dog" in text or "(on the cat" in text
    assert ("edge of the cat" in text) != ("edge of the dog" in text)
    # well inside a region: clear, as before
    assert near_peak(_spot(224, 224, 0.5, 0.9), "both.png") == {"cat": 1.0}
    assert where(_spot(224, 224, 0.5, 0.9), "both.png") == "peak: bottom centre (on the cat)"
    assert near_peak(np.zeros((7, 7)), "both.png") == {}


def test_share_in_carries_the_area_a_uniform_map_would_get():
    """Issue 17: every share comes with its chance level."""
    from helpers.claims import Share, region_area

    uniform = np.ones((224, 224), np.float32)
    for region in regions("both.png"):
        share = share_in(uniform, "both.png", region)
        assert isinstance(share, float) and isinstance(share, Share)
        assert share == pytest.approx(region_area("both.png", region)) == pytest.approx(share.area)
        assert share.ratio == pytest.approx(1.0)
    cat = share_in(uniform, "both.png", "cat")
    assert 0.25 < cat.area < 0.3                          # the cat's boxes hold much floor
    spot = np.zeros((224, 224), np.float32)
    spot[200:210, 100:110] = 1.0
    share = share_in(spot, "both.png", "cat")
    assert share == 1.0 and share.ratio == pytest.approx(1 / cat.area)
    assert str(share) == f"100% on the cat (a uniform map: {cat.area:.0%}, so {1 / cat.area:.1f}x chance)"
    assert f"{share:.0%}" == "100%" and float(share) == 1.0 and share * 2 == 2.0
    import pickle

    again = pickle.loads(pickle.dumps(share))
    assert again == share and again.area == share.area and again.region == "cat"


def test_class_contrast_says_what_a_high_correlation_means():
    from helpers.claims import class_contrast

    ramp = np.arange(49.0).reshape(7, 7)
    high = class_contrast(ramp, ramp ** 3, "tabby", "crossword puzzle")
    assert high.startswith("Spearman 1.00 between the maps of tabby and crossword puzzle: high.")
    assert "neither map is specific to its class" in high
    assert "low." in class_contrast(ramp, -ramp)
    rows = np.repeat(np.arange(7.0)[:, None], 7, axis=1)
    assert class_contrast(rows, rows.T + 0.5 * rows).startswith("Spearman 0.43 ")
    assert "moderate." in class_contrast(rows, rows.T + 0.5 * rows)
    assert "Spearman 0.00 " in class_contrast(rows, rows.T) and "low." in class_contrast(rows, rows.T)
    assert "cannot be compared" in class_contrast(ramp, np.zeros((7, 7)))


def test_most_probable_picks_the_class_the_model_believes_in(stand_in, both):
    """The reveal's class is chosen by code: with the stand-in, 282 (p 0.013), not 281 (p 0.003)."""
    from helpers import CAT_CLASSES, DOG_CLASSES, most_probable

    with torch.no_grad():
        probabilities = torch.softmax(stand_in(both[0])[0], dim=0)
    cat = most_probable(probabilities, CAT_CLASSES)
    assert cat == 282 and float(probabilities[cat]) > 0.005 > float(probabilities[281])
    assert most_probable(probabilities, DOG_CLASSES) == int(probabilities.argmax()) == 243
    assert most_probable(probabilities.numpy(), [281, 285]) == 281
    with pytest.raises(ValueError, match="among is empty"):
        most_probable(probabilities, [])


def test_signed_maps_count_only_their_positive_part():
    """A difference of two maps (or raw gradients) has negative values: evidence against, not a place."""
    cam = np.full((100, 100), -0.5, np.float32)
    cam[80:, 30:60] = 1.0                               # positive only inside the cat's box
    assert share_in(cam, "both.png", "cat") == pytest.approx(1.0)
    cam[:10, :10] = -1e6                                # a large negative part does not blow the share up
    assert share_in(cam, "both.png", "cat") == pytest.approx(1.0)
    negative = -np.random.default_rng(0).random((50, 50)).astype(np.float32) - 0.1
    assert share_in(negative, "both.png", "cat") == 0.0
    assert peak(negative) is None
    assert where(negative, "both.png").startswith("no peak: the map is blank")
    mixed = negative.copy()
    mixed[5, 25] = 0.01
    assert peak(mixed) == pytest.approx((25.5 / 50, 5.5 / 50))


def test_the_regions_figure_makes_its_folder_and_names_an_unwritable_path(tmp_path, capsys):
    from helpers.claims import main

    target = tmp_path / "new" / "deeper" / "regions.png"
    assert main(["--figure", str(target)]) == 0
    assert target.stat().st_size > 10_000
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    assert main(["--figure", str(blocker / "regions.png")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "a-file" in err


def test_missing_images_are_a_fetch_error_to_fix_not_sentences_to_reword(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("LESSON_DATA_MIRROR", str(tmp_path / "empty-mirror"))
    monkeypatch.setenv("LESSON_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setenv("LESSON_OFFLINE", "1")
    assert preflight("efficientnet_lite0", names=["both.png: the top class is a dog breed"]) == 1
    out = capsys.readouterr().out
    assert "1 of 1 claims could NOT be checked" in out and "python -m helpers.setup" in out
    assert "both.png" in out and "reword" not in out
