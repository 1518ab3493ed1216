import io

import numpy as np
import pytest
import torch
from PIL import Image

from helpers import IMAGENET_MEAN, IMAGENET_STD, load_image
from helpers.images import target_size


def png_bytes(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def test_both_png_shapes_types_and_normalisation(both):
    x, rgb = both
    assert x.dtype == torch.float32 and tuple(x.shape) == (1, 3, 224, 224)
    assert rgb.dtype == np.float32 and rgb.shape == (224, 224, 3)
    assert 0.0 <= rgb.min() and rgb.max() <= 1.0
    back = x[0].permute(1, 2, 0).numpy() * IMAGENET_STD + IMAGENET_MEAN
    assert np.abs(back - rgb).max() < 1e-5
    assert IMAGENET_MEAN.tolist() == pytest.approx([0.485, 0.456, 0.406])


def test_a_pixel_keeps_its_colour():
    image = Image.new("RGB", (300, 224), (200, 100, 50))
    x, rgb = load_image(image)
    assert rgb[10, 10] == pytest.approx(np.array([200, 100, 50]) / 255, abs=1e-6)
    expected = (np.array([200, 100, 50]) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    assert x[0, :, 10, 10].numpy() == pytest.approx(expected, abs=1e-5)


@pytest.mark.parametrize("size_in, size_out", [
    ((425, 280), (340, 224)),      # landscape: shorter side to 224
    ((280, 425), (224, 340)),      # portrait
    ((50, 40), (280, 224)),        # small images are scaled up
    ((4000, 100), (1024, 26)),     # the longer side is capped at 1024
    ((224, 224), (224, 224)),
])
def test_scaling_keeps_the_aspect_ratio_and_crops_nothing(size_in, size_out):
    assert target_size(*size_in) == size_out
    x, rgb = load_image(Image.new("RGB", size_in, "white"))
    assert tuple(x.shape[-2:]) == (size_out[1], size_out[0]) and rgb.shape[:2] == (size_out[1], size_out[0])


def test_size_argument():
    x, _ = load_image(Image.new("RGB", (200, 100)), size=64)
    assert tuple(x.shape) == (1, 3, 64, 128)
    with pytest.raises(ValueError, match="size"):
        load_image(Image.new("RGB", (10, 10)), size=0)


def test_exif_orientation_is_applied():
    image = Image.new("RGB", (300, 200), "white")
    image.paste((255, 0, 0), (0, 0, 30, 200))             # a red stripe on the left edge
    exif = Image.Exif()
    exif[0x0112] = 6                                       # "rotate 90° clockwise to view"
    x, rgb = load_image(png_bytes(image, "JPEG", exif=exif.tobytes(), quality=95))
    assert rgb.shape[0] > rgb.shape[1]                     # upright: now portrait
    assert rgb[2, rgb.shape[1] // 2, 0] > 0.8 and rgb[2, rgb.shape[1] // 2, 2] < 0.3   # stripe now on top


@pytest.mark.parametrize("mode, colour, expected", [
    ("RGBA", (255, 0, 0, 0), (1, 1, 1)),        # fully transparent becomes white
    ("RGBA", (255, 0, 0, 255), (1, 0, 0)),
    ("LA", (0, 255), (0, 0, 0)),
    ("L", 128, (128 / 255,) * 3),
    ("1", 1, (1, 1, 1)),
    ("CMYK", (0, 255, 255, 0), (1, 0, 0)),       # cyan 0, magenta and yellow full: red
    ("I;16", 65535, (1, 1, 1)),
    ("I;16", 32768, (0.5, 0.5, 0.5)),
])
def test_any_mode_becomes_rgb(mode, colour, expected):
    _, rgb = load_image(Image.new(mode, (32, 32), colour))
    assert rgb.shape == (224, 224, 3)
    assert rgb[100, 100] == pytest.approx(np.array(expected, dtype=np.float32), abs=0.01)


def test_palette_images_with_transparency():
    image = Image.new("P", (32, 32), 0)
    image.putpalette([0, 0, 255] + [0, 0, 0] * 255)
    image.info["transparency"] = 0
    _, rgb = load_image(png_bytes(image))
    assert rgb[5, 5] == pytest.approx([1, 1, 1], abs=0.01)


def test_sources_path_bytes_pil_and_url_agree(tmp_path, http_server, online):
    folder, base = http_server
    data = png_bytes(Image.new("RGB", (64, 48), (10, 200, 30)))
    (tmp_path / "a.png").write_bytes(data)
    (folder / "a.png").write_bytes(data)
    results = [load_image(source)[1] for source in
               (tmp_path / "a.png", str(tmp_path / "a.png"), data, Image.open(io.BytesIO(data)), f"{base}/a.png")]
    for rgb in results[1:]:
        assert np.array_equal(rgb, results[0])


def test_url_size_cap(http_server, online, monkeypatch):
    import helpers.images

    folder, base = http_server
    (folder / "big.png").write_bytes(png_bytes(Image.new("RGB", (64, 64))) + b"\0" * 5000)
    monkeypatch.setattr(helpers.images, "MAX_IMAGE_BYTES", 1000)
    with pytest.raises(ValueError, match="limit"):
        load_image(f"{base}/big.png")


def test_url_that_does_not_exist(http_server, online):
    _, base = http_server
    with pytest.raises(OSError, match="missing.png"):
        load_image(f"{base}/missing.png")


def test_bad_files_raise_errors_that_name_the_file(tmp_path):
    missing = tmp_path / "nope.png"
    with pytest.raises(OSError, match="nope.png"):
        load_image(missing)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.png"):
        load_image(empty)
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    with pytest.raises(ValueError, match="notes.png"):
        load_image(text)
    truncated = tmp_path / "cut.png"
    truncated.write_bytes(png_bytes(Image.effect_noise((128, 128), 64).convert("RGB"))[:3000])
    with pytest.raises(OSError, match="cut.png"):
        load_image(truncated)
    with pytest.raises(OSError, match="folder"):
        load_image(tmp_path)
    with pytest.raises(TypeError, match="path"):
        load_image(12345)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    bomb = tmp_path / "bomb.png"
    Image.new("1", (9000, 9000)).save(bomb)            # 81 megapixels in a small file
    assert bomb.stat().st_size < 200_000
    with pytest.raises(ValueError, match="bomb.png.*9000x9000"):
        load_image(bomb)


# --- issue 24: scientific images, scaled by their actual range ----------------------------------

def _ramp(dtype, top):
    return (np.linspace(0, 1, 64 * 64).reshape(64, 64) * top).astype(dtype)


def test_a_float_tiff_in_0_1_is_not_nearly_black_and_the_scaling_is_printed(tmp_path, capsys):
    path = tmp_path / "float.tif"
    Image.fromarray(_ramp(np.float32, 1.0)).save(path)               # Pillow mode F, values 0..1
    x, rgb = load_image(path, size=64)
    said = capsys.readouterr().out
    assert rgb.max() == pytest.approx(1.0, abs=1 / 255) and rgb.min() == 0     # was 0.0039 at most
    assert "a float greyscale image (Pillow mode F) with values from 0 to 1: scaled from [0, 1] to [0, 1]" in said
    assert np.abs(x[0].permute(1, 2, 0).numpy() * IMAGENET_STD + IMAGENET_MEAN - rgb).max() < 1e-5


def test_12_bit_data_in_a_16_bit_png_uses_its_range_and_value_range_overrides(tmp_path, capsys):
    path = tmp_path / "xray.png"
    Image.fromarray(_ramp(np.uint16, 4095)).save(path)               # microscopy, X-ray: 12 of 16 bits
    _, rgb = load_image(path, size=64)
    assert rgb.max() == pytest.approx(1.0, abs=1 / 255)              # was 0.063
    assert "16-bit greyscale image (Pillow mode I;16) with values from 0 to 4095: scaled from [0, 4095]" in \
        capsys.readouterr().out
    _, whole = load_image(path, size=64, value_range=(0, 65535))    # the type's whole range, if wanted
    assert whole.max() == pytest.approx(4095 / 65535, abs=1 / 255)
    assert "scaled from [0, 65535] to [0, 1] (as you asked (value_range))" in capsys.readouterr().out
    halves = np.full((64, 64), 64, np.uint8)
    halves[:, 32:] = 200
    _, eight_bit = load_image(Image.fromarray(halves), size=64, value_range=(0, 127.5))    # an 8-bit image too
    assert eight_bit[10, 5].tolist() == pytest.approx([64 / 127.5] * 3, abs=1e-3) and eight_bit[10, 60].min() == 1.0
    for bad in [(10, 10), (5,), "dark", (0, float("nan"))]:
        with pytest.raises(ValueError, match=r"value_range must be \(low, high\).*\(0, 4095\)"):
            load_image(path, value_range=bad)
