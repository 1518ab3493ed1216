import shutil
import socket
import time

import pytest

import helpers.downloads as fetch_module
from helpers.downloads import fetch, lesson_images, manifest, sha256_of


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("LESSON_CACHE", str(cache))
    return cache


@pytest.fixture
def served(http_server, mirror, monkeypatch):
    """The lesson's images served on 127.0.0.1, with the manifest pointing there."""
    folder, base = http_server
    for name in lesson_images():
        shutil.copyfile(mirror / name, folder / name)
    real = fetch_module.manifest()
    patched = {name: dict(entry, url=f"{base}/{name}") for name, entry in real.items()}
    monkeypatch.setattr(fetch_module, "manifest", lambda: patched)
    return folder


def test_manifest_lists_every_lesson_image_with_url_and_sha256(mirror):
    names = lesson_images()
    assert names == ["both.png", "dog_cat.jfif", "dogs.png", "horses.jpg"]
    for name in names:
        entry = manifest()[name]
        assert entry["url"].startswith("https://") and entry["url"].endswith("/" + name)
        assert entry["sha256"] == sha256_of(mirror / name)
        assert "MIT" in entry["credit"]


def test_from_the_mirror_then_from_the_cache(empty_cache, mirror, monkeypatch):
    path = fetch("horses.jpg")
    assert path == empty_cache / "horses.jpg" and sha256_of(path) == manifest()["horses.jpg"]["sha256"]
    monkeypatch.delenv("LESSON_DATA_MIRROR")
    assert fetch("horses.jpg") == path                  # the cache alone now answers


def test_from_the_url_when_there_is_no_mirror(empty_cache, served, online, monkeypatch, capsys):
    monkeypatch.delenv("LESSON_DATA_MIRROR")
    path = fetch("dogs.png")
    assert sha256_of(path) == manifest()["dogs.png"]["sha256"]
    assert "dogs.png" in capsys.readouterr().err       # tqdm's progress bar


def test_a_download_with_the_wrong_hash_is_not_kept(empty_cache, served, online, monkeypatch):
    monkeypatch.delenv("LESSON_DATA_MIRROR")
    (served / "both.png").write_bytes(b"tampered" * 100)
    with pytest.raises(OSError, match="sha256"):
        fetch("both.png")
    assert not (empty_cache / "both.png").exists()
    assert list(empty_cache.glob("*.part")) == []


def test_a_bad_mirror_copy_falls_through_to_the_url(empty_cache, served, online, tmp_path, monkeypatch):
    bad_mirror = tmp_path / "stick"
    bad_mirror.mkdir()
    (bad_mirror / "both.png").write_bytes(b"not the image")
    monkeypatch.setenv("LESSON_DATA_MIRROR", str(bad_mirror))
    assert sha256_of(fetch("both.png")) == manifest()["both.png"]["sha256"]


def test_a_corrupted_cache_copy_is_replaced(empty_cache, mirror):
    empty_cache.mkdir(parents=True)
    (empty_cache / "both.png").write_bytes(b"half a file")
    assert sha256_of(fetch("both.png")) == manifest()["both.png"]["sha256"]


def test_nowhere_to_get_it_says_where_it_looked_and_what_to_do(empty_cache, monkeypatch):
    monkeypatch.delenv("LESSON_DATA_MIRROR")
    with pytest.raises(OSError) as caught:
        fetch("both.png")
    message = str(caught.value)
    assert "not in the cache" in message and "LESSON_DATA_MIRROR is not set" in message
    assert "LESSON_OFFLINE" in message and "What to do" in message


def test_unknown_names_are_refused():
    with pytest.raises(KeyError, match="both.png"):
        fetch("cat.png")


def test_a_server_that_never_answers_times_out(empty_cache, online, monkeypatch):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)                                  # accepts, never answers
    port = listener.getsockname()[1]
    monkeypatch.setattr(fetch_module, "TIMEOUT", (0.5, 0.5))
    try:
        started = time.monotonic()
        with pytest.raises(OSError, match="could not download"):
            fetch_module.read_url(f"http://127.0.0.1:{port}/x.png", timeout=fetch_module.TIMEOUT)
        assert time.monotonic() - started < 5
    finally:
        listener.close()


def test_only_http_urls_are_downloaded(online):
    with pytest.raises(ValueError, match="http"):
        fetch_module.read_url("file:///etc/passwd")


def test_offline_means_no_download_is_tried(monkeypatch):
    monkeypatch.setenv("LESSON_OFFLINE", "1")
    with pytest.raises(fetch_module.OfflineError):
        fetch_module.read_url("http://127.0.0.1:9/never")
