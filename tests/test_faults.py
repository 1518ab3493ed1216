"""Faults and hostile input (issue 12): broken weights files, many processes and threads, slow
servers, unwritable caches, bad manifest names, and learners' misuse. Servers run on 127.0.0.1."""

import multiprocessing
import os
import socket
import threading
import time

import numpy as np
import pytest
import torch
from torch import nn

import helpers.downloads as downloads
import helpers.models as models
from helpers.downloads import fetch, manifest, sha256_of

WEIGHTS = "resnet50-0676ba61.pth"


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch cache; the stand-in is replaced by a small model, these tests are about the weights."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(models, "_efficientnet_lite0", lambda: Small())
    monkeypatch.setattr(models, "_NOTICED", set())          # a fresh session: the notice not shown yet
    return tmp_path / "torch"


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("LESSON_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(downloads, "_SAID_UNWRITABLE", set(), raising=False)
    return tmp_path / "cache"


@pytest.fixture(scope="module")
def fake_weights(tmp_path_factory):
    """A stand-in for the real ResNet-50 weights file (random weights), and its state dict."""
    from torchvision.models import resnet50

    torch.manual_seed(3)
    state = resnet50(weights=None).state_dict()
    path = tmp_path_factory.mktemp("weights") / WEIGHTS
    torch.save(state, path)
    return path, state


def _trust_fake_weights(monkeypatch, path, url=None):
    """Make the manifest list ``path``'s hash (and ``url``) for the ResNet-50 weights."""
    real = manifest()
    entry = dict(real[WEIGHTS], sha256_prefix=sha256_of(path)[:16])
    if url:
        entry["url"] = url
    monkeypatch.setattr(downloads, "manifest", lambda: {**real, WEIGHTS: entry})


def _broken_files():
    import io

    buffer = io.BytesIO()
    torch.save({"conv1.weight": torch.zeros(64, 3, 7, 7)}, buffer)
    whole = buffer.getvalue()
    return {
        "truncated": whole[: len(whole) // 2],
        "garbage": os.urandom(5000),
        "empty": b"",
        "html": b"<!DOCTYPE html><html><body><h1>503 Service Unavailable</h1></body></html>",
        "wrong keys": whole,
    }


BROKEN = _broken_files()


# --- 1. a broken weights file in torch's cache --------------------------------------------------

@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_weights_file_is_moved_aside_and_named_once(kind, torch_home, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("LESSON_DATA_MIRROR", str(tmp_path / "empty-stick"))     # no good copy anywhere
    path = models.resnet50_weights_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(BROKEN[kind])
    model = models.load_model("resnet50")
    out = capsys.readouterr().out
    assert model.lesson_name == "efficientnet_lite0"
    broken = path.with_name(WEIGHTS + ".broken")
    assert not path.exists() and broken.read_bytes() == BROKEN[kind]
    assert out.count("NOTICE") == 1 and out.count(str(broken)) == 1
    assert "weights_only" not in out and "Traceback" not in out
    assert len(out.strip().splitlines()) == 1


def test_weights_problem_names_each_kind_of_broken_file(fake_weights, tmp_path, monkeypatch):
    path, _ = fake_weights
    _trust_fake_weights(monkeypatch, path)
    assert models.weights_problem(path, load=True) is None
    expected = {"truncated": "sha256", "garbage": "sha256", "empty": "empty", "html": "web page",
                "wrong keys": "sha256"}
    for kind, data in BROKEN.items():
        bad = tmp_path / f"{kind}.pth"
        bad.write_bytes(data)
        assert expected[kind] in models.weights_problem(bad), kind
    assert "no file" in models.weights_problem(tmp_path / "missing.pth")


def test_the_checker_does_not_call_a_broken_cached_file_ok(torch_home):
    from helpers.check import check_weights

    path = models.resnet50_weights_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(BROKEN["html"])
    result = check_weights()
    assert not result.ok and "web page" in result.detail and str(path) in result.detail


def _broken_cache_and_a_stick(source, kind: str, tmp_path, monkeypatch):
    """Good weights on a USB-stick mirror, a broken file of ``kind`` in torch's cache; its path."""
    stick = tmp_path / "stick"
    stick.mkdir()
    (stick / WEIGHTS).write_bytes(source.read_bytes())
    monkeypatch.setenv("LESSON_DATA_MIRROR", str(stick))
    _trust_fake_weights(monkeypatch, source)
    path = models.resnet50_weights_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(BROKEN[kind])
    return path


def test_a_broken_file_is_replaced_from_the_mirror(fake_weights, torch_home, tmp_path, monkeypatch, capsys):
    source, state = fake_weights
    path = _broken_cache_and_a_stick(source, "truncated", tmp_path, monkeypatch)
    model = models.load_model("resnet50")
    out = capsys.readouterr().out
    assert model.lesson_name == "resnet50"
    assert torch.equal(model.fc.weight, state["fc.weight"])
    assert sha256_of(path) == sha256_of(source)
    assert path.with_name(WEIGHTS + ".broken").read_bytes() == BROKEN["truncated"]
    assert out.count("NOTICE") == 1 and "broken" in out and "fetched again" in out


def test_a_broken_file_is_replaced_from_the_url(fake_weights, torch_home, http_server, online, monkeypatch,
                                                capsys):
    source, state = fake_weights
    folder, base = http_server
    (folder / WEIGHTS).write_bytes(source.read_bytes())
    monkeypatch.delenv("LESSON_DATA_MIRROR")
    _trust_fake_weights(monkeypatch, source, url=f"{base}/{WEIGHTS}")
    path = models.resnet50_weights_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(BROKEN["garbage"])
    model = models.load_model("resnet50")
    assert model.lesson_name == "resnet50" and torch.equal(model.conv1.weight, state["conv1.weight"])
    assert "fetched again" in capsys.readouterr().out


def test_setup_moves_a_broken_cached_file_aside(fake_weights, torch_home, tmp_path, monkeypatch, capsys):
    import helpers.setup as setup_module

    source, _ = fake_weights
    path = _broken_cache_and_a_stick(source, "empty", tmp_path, monkeypatch)
    assert setup_module.fetch_weights(progress=False) == path
    assert sha256_of(path) == sha256_of(source) and "empty" in capsys.readouterr().out


# --- the stand-in notice: one line, once per session ---------------------------------------------

def test_the_stand_in_notice_is_one_line_offline(torch_home, capsys):
    models.load_model("resnet50")
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("NOTICE: using the offline stand-in, EfficientNet-Lite0, not ResNet-50 "
                               "(offline: LESSON_OFFLINE is set).")
    assert "1000 classes" in lines[0] and "python -m helpers.setup" in lines[0] and "LESSON_DATA_MIRROR" in lines[0]
    assert WEIGHTS not in lines[0]                  # no file name for the output area to break in two


def test_the_stand_in_notice_prints_once_per_session(torch_home, capsys):
    for _ in range(3):
        assert models.load_model("resnet50").lesson_name == "efficientnet_lite0"
    assert capsys.readouterr().out.count("NOTICE") == 1


def test_the_stand_in_notice_names_a_network_error_in_one_line(torch_home, online, monkeypatch, capsys):
    monkeypatch.delenv("LESSON_DATA_MIRROR")
    real = manifest()
    closed = {**real, WEIGHTS: dict(real[WEIGHTS], url=f"http://127.0.0.1:9/{WEIGHTS}")}
    monkeypatch.setattr(downloads, "manifest", lambda: closed)
    models.load_model("resnet50")
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert len(lines) == 1 and len(lines[0]) < 300
    assert "not ResNet-50 (no internet: " in lines[0] and "ConnectionError for 127.0.0.1)" in lines[0]
    assert "Max retries" not in out and "urllib3" not in out


# --- 2. many processes copying from the mirror into one cache ---------------------------------

def _copy_rounds(barrier, results, base, rounds):
    errors, sizes = [], []
    for index in range(rounds):
        os.environ["LESSON_CACHE"] = os.path.join(base, str(index))     # an empty cache each round
        barrier.wait(timeout=20)
        try:
            path = fetch("dogs.png", progress=False)
            sizes.append(sha256_of(path) == manifest()["dogs.png"]["sha256"])
        except Exception as error:                                    # noqa: BLE001 - reported below
            errors.append(f"{type(error).__name__}: {error}")
    results.put((errors, sizes))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_four_processes_copying_from_the_mirror_at_once(tmp_path, mirror):
    context = multiprocessing.get_context("fork")
    processes, rounds = 4, 25
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_copy_rounds, args=(barrier, results, str(tmp_path), rounds))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=10)
    errors = [e for errs, _ in outcomes for e in errs]
    good = [ok for _, oks in outcomes for ok in oks]
    assert errors == [] and len(good) == processes * rounds and all(good)
    assert list(tmp_path.rglob("*.part")) == []


# --- 3. a server that trickles ------------------------------------------------------------------

@pytest.fixture
def trickle_server():
    """HTTP on 127.0.0.1 that declares 100,000 bytes and then sends one byte every 0.2 s."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve(conn):
        try:
            conn.recv(4096)
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\nContent-Type: image/png\r\n\r\n")
            for _ in range(100):                     # at most 20 s, whatever happens
                if stop.is_set():
                    break
                conn.sendall(b"x")
                time.sleep(0.2)
        except OSError:
            pass
        finally:
            conn.close()

    def accept():
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                continue
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        listener.close()


@pytest.fixture
def short_stall_window(monkeypatch):
    monkeypatch.setenv("LESSON_STALL_SECONDS", "1")
    monkeypatch.setenv("LESSON_STALL_BYTES", "1000")


def test_a_trickling_download_is_stopped_by_the_stall_rule(trickle_server, short_stall_window, online, cache,
                                                         monkeypatch):
    monkeypatch.delenv("LESSON_DATA_MIRROR")
    url = f"{trickle_server}/both.png"
    real = manifest()
    monkeypatch.setattr(downloads, "manifest", lambda: {**real, "both.png": dict(real["both.png"], url=url)})
    started = time.monotonic()
    with pytest.raises(OSError) as caught:
        fetch("both.png", progress=False)
    assert time.monotonic() - started < 5
    message = str(caught.value)
    assert "stalled" in message and url in message and "bytes/s" in message
    assert list(cache.glob("*.part")) == []


def test_load_image_from_a_trickling_url_is_stopped(trickle_server, short_stall_window, online):
    from helpers import load_image

    url = f"{trickle_server}/cat.png"
    started = time.monotonic()
    with pytest.raises(OSError, match="stalled") as caught:
        load_image(url)
    assert time.monotonic() - started < 5 and url in str(caught.value)


def test_the_stall_rule_lets_a_steady_download_through(http_server, short_stall_window, online, cache, mirror,
                                                       monkeypatch):
    folder, base = http_server
    (folder / "dogs.png").write_bytes((mirror / "dogs.png").read_bytes())
    monkeypatch.delenv("LESSON_DATA_MIRROR")
    real = manifest()
    monkeypatch.setattr(downloads, "manifest",
                        lambda: {**real, "dogs.png": dict(real["dogs.png"], url=f"{base}/dogs.png")})
    assert sha256_of(fetch("dogs.png", progress=False)) == real["dogs.png"]["sha256"]


def test_a_bad_content_length_names_the_url(online):
    import http.server

    class BadLength(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "abc")
            self.end_headers()
            self.wfile.write(b"x" * 10)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BadLength)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/x.png"
    try:
        with pytest.raises(ValueError) as caught:
            downloads.read_url(url)
        assert url in str(caught.value) and "Content-Length" in str(caught.value)
    finally:
        server.shutdown()
        server.server_close()


# --- 5. torch.inference_mode() ------------------------------------------------------------------

def test_cams_and_saliency_work_inside_inference_mode(capsys):
    from helpers import compute_cams, gradcam
    from helpers.trust import guided_backprop, saliency
    from helpers.viz import viz_gradcam

    model = Small().eval()
    x, rgb = torch.rand(1, 3, 64, 64), np.random.rand(64, 64, 3).astype(np.float32)
    layers = [model.features]
    outside = (gradcam(model, layers, 7, x), saliency(model, 7, x), guided_backprop(model, 7, x))
    with torch.inference_mode():
        frozen = x.clone()                         # an inference tensor, as a learner's would be
        assert frozen.is_inference()
        inside = (gradcam(model, layers, 7, frozen), saliency(model, 7, frozen), guided_backprop(model, 7, frozen))
        maps, logits = compute_cams(model, layers, [7], frozen)
        picture = viz_gradcam(model, layers, 7, frozen, rgb, show=False)
    for a, b in zip(outside, inside):
        assert a.shape == (64, 64) and np.allclose(a, b, atol=1e-5)
    assert np.allclose(maps[0], outside[0], atol=1e-5) and picture.shape == (64, 64, 3)
    assert "Target class: 7 · " in capsys.readouterr().out and not model.training


# --- 6. two threads on one model ----------------------------------------------------------------

class Small(nn.Module):
    """A small CNN with BatchNorm and Dropout (their modes matter) and 1000 classes."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(5)
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                                      nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.BatchNorm2d(32), nn.ReLU())
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.5), nn.Linear(32, 1000))

    def forward(self, x):
        return self.head(self.features(x))


def test_two_threads_on_one_model_get_the_same_maps_and_modes(monkeypatch):
    from helpers import gradcam

    model = Small().eval()
    x = torch.rand(1, 3, 64, 64)
    expected = gradcam(model, [model.features], 7, x)
    model.train()
    model.features[1].eval()                     # a mixed mode the caller chose
    modes = {name: m.training for name, m in model.named_modules()}
    results, errors = [], []
    start = threading.Barrier(4)

    def work():
        start.wait(timeout=10)
        for _ in range(13):
            try:
                results.append(gradcam(model, [model.features], 7, x))
            except Exception as error:            # noqa: BLE001 - counted below
                errors.append(repr(error))

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == [] and len(results) == 52
    assert all(np.allclose(r, expected, atol=1e-6) for r in results)
    assert {name: m.training for name, m in model.named_modules()} == modes


# --- 7. an unwritable cache with a mirror -------------------------------------------------------

def _unwritable(kind, tmp_path):
    if kind == "a file":
        place = tmp_path / "cache-file"
        place.write_text("not a folder")
        return place
    if kind == "under a file":
        (tmp_path / "blocker").write_text("x")
        return tmp_path / "blocker" / "cache"
    place = tmp_path / "readonly"
    place.mkdir()
    place.chmod(0o500)
    return place


@pytest.mark.parametrize("kind", ["a file", "under a file", "read-only"])
def test_an_unwritable_cache_uses_the_mirror_copy_in_place(kind, tmp_path, mirror, monkeypatch, capsys):
    if kind == "read-only" and os.geteuid() == 0:
        pytest.skip("root can write into a read-only folder")
    monkeypatch.setattr(downloads, "_SAID_UNWRITABLE", set(), raising=False)
    monkeypatch.setenv("LESSON_CACHE", str(_unwritable(kind, tmp_path)))
    first, second = fetch("both.png", progress=False), fetch("horses.jpg", progress=False)
    assert first == mirror / "both.png" and second == mirror / "horses.jpg"
    assert sha256_of(first) == manifest()["both.png"]["sha256"]
    out = capsys.readouterr().out
    assert out.count("cannot be written") == 1 and "LESSON_CACHE" in out


# --- 8. manifest names that are not plain file names --------------------------------------------

@pytest.mark.parametrize("name", ["../evil.png", "sub/evil.png", "..", "/tmp/evil.png", "a\\evil.png"])
def test_a_manifest_name_that_is_a_path_is_refused(name, cache, tmp_path, mirror, monkeypatch):
    stick = tmp_path / "a" / "stick"                   # copies that a path name would reach
    (stick / "sub").mkdir(parents=True)
    for source in (tmp_path / "a" / "evil.png", stick / "sub" / "evil.png"):
        source.write_bytes((mirror / "both.png").read_bytes())
    monkeypatch.setenv("LESSON_DATA_MIRROR", str(stick))
    real = manifest()
    monkeypatch.setattr(downloads, "manifest", lambda: {**real, name: dict(real["both.png"], name=name)})
    with pytest.raises(ValueError, match="not a plain file name"):
        fetch(name, progress=False)
    assert sorted(tmp_path.rglob("*evil.png")) == [tmp_path / "a" / "evil.png", stick / "sub" / "evil.png"]
    assert not cache.exists()


# --- should fix: clear messages -----------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.float64, torch.float16, torch.bfloat16])
def test_an_input_of_another_dtype_is_cast_to_the_models(dtype):
    from helpers import gradcam
    from helpers.trust import saliency

    model = Small().eval()
    x = torch.rand(1, 3, 64, 64)
    x = x.to(dtype).float()                       # the same values the cast will see
    expected = gradcam(model, [model.features], 7, x)
    assert np.allclose(gradcam(model, [model.features], 7, x.to(dtype)), expected, atol=1e-5)
    assert np.allclose(saliency(model, 7, x.to(dtype)), saliency(model, 7, x), atol=1e-5)


def test_curves_refuse_a_heatmap_of_another_size_and_zero_steps():
    from helpers.trust import deletion_curve, insertion_curve

    model = Small().eval()
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(ValueError, match="7x7.*64x64"):
        deletion_curve(model, x, 7, np.zeros((7, 7), np.float32))
    with pytest.raises(ValueError, match="steps"):
        insertion_curve(model, x, 7, np.zeros((64, 64), np.float32), steps=0)
    assert deletion_curve(model, x, 7, np.random.rand(64, 64), steps=4).shape == (5,)


def test_explain_images_of_nothing_says_so():
    from helpers.trust import explain_images

    model = Small().eval()
    with pytest.raises(ValueError, match="no images"):
        explain_images(model, [model.features], [])


def test_randomisation_check_takes_one_class_id(monkeypatch):
    import helpers.trust as trust

    model = Small().eval()
    monkeypatch.setattr(trust, "cascade_stages", lambda m: [("head", ["head"]), ("features", ["features"])])
    x = torch.rand(1, 3, 64, 64)
    layers_of = lambda m: [m.features]                # noqa: E731
    one = trust.randomisation_check(model, layers_of, 7, x, seeds=[0], stages=1, progress=False)
    listed = trust.randomisation_check(model, layers_of, [7], x, seeds=[0], stages=1, progress=False)
    assert one["pairs"] == 1 and one["mean"] == pytest.approx(listed["mean"])
    with pytest.raises(TypeError, match="class_ids"):
        trust.randomisation_check(model, layers_of, "7", x, seeds=[0], progress=False)


def test_setup_mirror_out_at_the_cache_or_a_file_says_so(cache, tmp_path, capsys):
    import helpers.setup as setup_module

    cache.mkdir()
    assert setup_module.main(["--no-weights", "--mirror-out", str(cache)]) == 2
    assert "cache folder" in capsys.readouterr().out
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    assert setup_module.main(["--no-weights", "--mirror-out", str(a_file)]) == 2
    assert "is a file" in capsys.readouterr().out and a_file.read_text() == "x"


def test_stale_part_files_are_cleaned_up(cache, mirror):
    cache.mkdir()
    stale, fresh = cache / "both.png.k1ll3d.part", cache / "both.png.wr1t1ng.part"
    stale.write_bytes(b"left by a killed process")
    fresh.write_bytes(b"another process is writing this")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    fetch("both.png", progress=False)
    assert not stale.exists() and fresh.exists()


@pytest.mark.parametrize("value, offline", [("1", True), ("2", True), ("offline", True), ("yes", True),
                                            ("0", False), ("", False), ("false", False)])
def test_any_lesson_offline_value_but_0_means_offline(value, offline, monkeypatch):
    monkeypatch.setenv("LESSON_OFFLINE", value)
    assert downloads.is_offline() is offline


# --- hostile-tester regressions (threads) ------------------------------------------------------

def _hooks_registered_while_locked(call, model):
    """Start ``call`` on a thread while this thread holds the model's lock; any forward hook
    that appears meanwhile was registered before the lock was taken (another thread's forward
    pass could have fired it)."""
    from helpers.cam import model_lock

    with model_lock(model):
        worker = threading.Thread(target=call, daemon=True)
        worker.start()
        time.sleep(0.3)
        hooked = [name for name, module in model.named_modules() if module._forward_hooks]
    worker.join(30)
    return hooked


def test_forward_with_activations_takes_the_lock_before_hooking():
    from helpers.cam import forward_with_activations

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    x = torch.randn(1, 3, 16, 16)
    assert _hooks_registered_while_locked(lambda: forward_with_activations(model, [model[0]], x), model) == []
    assert not model[0]._forward_hooks


def test_survey_takes_the_lock_before_hooking():
    from helpers.architectures import survey

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3), nn.AdaptiveAvgPool2d(1),
                          nn.Flatten(), nn.Linear(4, 3))
    assert _hooks_registered_while_locked(lambda: survey(model), model) == []
    assert [output.module for output in survey(model)][:1] == [model[0]]


def test_class_ids_are_checked_against_the_logits_not_1000():
    from helpers import gradcam

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 1500))
    x = torch.randn(1, 3, 16, 16)
    assert gradcam(model, [model[0]], 1200, x).shape == (16, 16)
    with pytest.raises(ValueError, match="0..1499"):
        gradcam(model, [model[0]], 1500, x)
    with pytest.raises(TypeError):
        gradcam(model, [model[0]], 1.5, x)


def test_the_usb_mirror_never_gets_broken_cached_weights(tmp_path, monkeypatch, capsys):
    import helpers.setup as setup_module
    from helpers.models import resnet50_weights_path

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(setup_module, "lesson_images", lambda: [])
    cached = resnet50_weights_path()
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"\0" * 4096)                            # the right name, the wrong content
    setup_module.write_mirror(tmp_path / "usb")
    assert not (tmp_path / "usb" / WEIGHTS).exists()
    out = capsys.readouterr().out
    assert "NOT copied" in out and str(cached) in out


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_eigencam_on_a_half_precision_model(dtype):
    from helpers import gradcam
    from helpers.cam import eigencam_map

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(8, 3)).eval()
    x = torch.randn(1, 3, 16, 16)
    full = gradcam(model, [model[0]], 1, x, method="EigenCAM")
    half = gradcam(model.to(dtype), [model[0]], 1, x, method="EigenCAM")
    assert half.dtype == np.float32 and half.shape == (16, 16) and np.isfinite(half).all()
    assert np.corrcoef(full.ravel(), half.ravel())[0, 1] > 0.9
    assert eigencam_map(torch.randn(1, 4, 5, 5, dtype=dtype)).dtype == dtype


def test_a_file_as_cache_and_a_damaged_mirror_copy_are_both_named(tmp_path, monkeypatch):
    from helpers.downloads import FetchError, OfflineError

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    (mirror / "both.png").write_bytes(b"not the lesson's picture")
    (tmp_path / "cachefile").write_text("x")
    monkeypatch.setenv("LESSON_CACHE", str(tmp_path / "cachefile"))
    monkeypatch.setenv("LESSON_DATA_MIRROR", str(mirror))
    monkeypatch.setenv("LESSON_OFFLINE", "1")
    with pytest.raises(FetchError) as caught:
        fetch("both.png", progress=False)
    message = str(caught.value)
    assert "mirror's copy" in message and "wrong sha256" in message and "LESSON_OFFLINE is set" in message
    assert any(isinstance(e, OfflineError) for e in caught.value.errors)


@pytest.mark.parametrize("seconds", ["nan", "inf", "-5", "0"])
def test_a_stall_window_that_would_switch_the_rule_off_is_refused(seconds, monkeypatch):
    monkeypatch.setenv("LESSON_STALL_SECONDS", seconds)
    monkeypatch.delenv("LESSON_STALL_BYTES", raising=False)
    with pytest.raises(ValueError, match="LESSON_STALL_SECONDS must be a finite number"):
        downloads._stall_rule()


def test_stall_bytes_in_scientific_notation(monkeypatch):
    monkeypatch.setenv("LESSON_STALL_SECONDS", "30")
    monkeypatch.setenv("LESSON_STALL_BYTES", "1e4")
    assert downloads._stall_rule() == (30.0, 10000)
    assert type(downloads._stall_rule()[1]) is int


def test_a_server_that_goes_silent_is_stopped_after_the_stall_window(short_stall_window, online):
    import http.server
    import socketserver

    class Silent(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            self.wfile.write(b"x" * 10)
            self.wfile.flush()
            time.sleep(8)

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Silent)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        with pytest.raises(downloads.DownloadStalledError, match="nothing arrived for 1 s"):
            downloads.read_url(f"http://127.0.0.1:{server.server_address[1]}/")
        assert time.monotonic() - started < 5                  # not the 30 s read timeout
    finally:
        server.shutdown()
        server.server_close()


def _front_door():
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("lesson_front_door", root / "lesson.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, root


def test_the_front_door_names_an_unknown_command_and_never_takes_an_option_for_a_folder(monkeypatch, capsys):
    lesson, root = _front_door()
    assert lesson.main(["bogus"]) == 2
    assert capsys.readouterr().out.splitlines()[0] == "unknown command: bogus"
    commands = []
    monkeypatch.setattr(lesson, "ensure_venv", lambda **kwargs: "python")
    monkeypatch.setattr(lesson, "run", lambda *args, **kwargs: commands.append(args))
    assert lesson.main(["mirror", "--anyway"]) == 0
    assert commands == [("python", "-m", "helpers.setup", "--mirror-out", (root / "lesson-mirror").resolve())]
