"""Omniglot: reading, preprocessing, the cache, splits, errors and the verified download."""
import hashlib
import http.server
import os
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from minireptile.tasks import omniglot
from omniglot_tree import layout, write_folder, write_zip

SHARED = Path(os.environ.get("MINIREPTILE_OMNIGLOT", Path(__file__).parents[2] / "shared" / "omniglot"))
TEST_ALPHABETS = ["Japanese_(katakana)", "Sanskrit", "Tagalog"]


@pytest.fixture
def cache(tmp_path):
    return tmp_path / "cache"


def test_load_image_ink_is_one_paper_is_zero(tmp_path):
    image = np.ones((105, 105), dtype=bool)
    image[:, :52] = False                                          # left half black ink
    Image.fromarray(image).convert("1").save(tmp_path / "a.png")
    x = omniglot.load_image(tmp_path / "a.png")
    assert x.shape == (28, 28) and x.dtype == np.float32
    np.testing.assert_allclose(x[:, :10], 1.0, atol=1e-6)         # away from the edge: LANCZOS rings
    np.testing.assert_allclose(x[:, 18:], 0.0, atol=1e-6)
    assert 0.0 <= x.min() and x.max() <= 1.0


def test_folder_and_zip_give_the_same_arrays(tmp_path, cache):
    files = layout("images_background", ["Alpha", "Beta"], characters=3, drawers=4)
    write_folder(tmp_path / "folder", files)
    (tmp_path / "zipped").mkdir()
    write_zip(tmp_path / "zipped" / "images_background.zip", files)
    a = omniglot.load(tmp_path / "folder", cache=cache)
    b = omniglot.load(tmp_path / "zipped", cache=cache)
    assert a.images.shape == (6, 4, 28, 28)
    assert a.names == b.names == [(al, f"character0{c}") for al in ("Alpha", "Beta") for c in (1, 2, 3)]
    np.testing.assert_array_equal(a.images, b.images)


def test_a_character_in_two_sets_counts_once(tmp_path, cache):
    first = layout("images_background_small1", ["Greek", "Korean"], 2, 3, seed=1)
    second = layout("images_background_small2", ["Greek", "Tagalog"], 2, 3, seed=2)
    write_zip(tmp_path / "images_background_small1.zip", first)
    write_zip(tmp_path / "images_background_small2.zip", second)
    data = omniglot.load(tmp_path, cache=cache)
    assert data.alphabets == ["Greek", "Korean", "Tagalog"] and len(data.names) == 6
    greek = data.names.index(("Greek", "character01"))            # the first set's drawings
    png = tmp_path / "first.png"
    png.write_bytes(first["images_background_small1/Greek/character01/0001_01.png"])
    np.testing.assert_array_equal(data.images[greek, 0], omniglot.load_image(png))


def test_cache_is_used_and_follows_the_source_files(tmp_path, cache, monkeypatch):
    files = layout("images_evaluation", ["Alpha"], 2, 2)
    write_folder(tmp_path, files)
    first = omniglot.load(tmp_path, cache=cache)
    assert len(list(cache.glob("omniglot-*.npz"))) == 1
    monkeypatch.setattr(omniglot, "_read", lambda sources: pytest.fail("the cache was not used"))
    np.testing.assert_array_equal(omniglot.load(tmp_path, cache=cache).images, first.images)
    png = tmp_path / next(iter(files))
    os.utime(png, ns=(png.stat().st_atime_ns, png.stat().st_mtime_ns + 10**9))   # a changed file
    with pytest.raises(pytest.fail.Exception, match="the cache was not used"):
        omniglot.load(tmp_path, cache=cache)


def test_cache_folder_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIREPTILE_CACHE", str(tmp_path / "env-cache"))
    assert omniglot.cache_dir() == tmp_path / "env-cache"
    monkeypatch.delenv("MINIREPTILE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert omniglot.cache_dir() == tmp_path / "xdg" / "minireptile"


def test_errors_name_the_file(tmp_path, cache):
    files = layout("images_background", ["Alpha"], 1, 2)
    bad = "images_background/Alpha/character01/0001_02.png"
    files[bad] = b"not a png at all"
    write_folder(tmp_path / "corrupt", files)
    with pytest.raises(ValueError, match=r"0001_02.png: not a readable PNG image"):
        omniglot.load(tmp_path / "corrupt", cache=cache)
    (tmp_path / "empty" / "images_evaluation").mkdir(parents=True)
    with pytest.raises(ValueError, match="images_evaluation: no character images found"):
        omniglot.load(tmp_path / "empty", cache=cache)
    (tmp_path / "other").mkdir()
    write_zip(tmp_path / "other" / "images_background.zip", {"cats/cat.png": files[bad]})
    with pytest.raises(ValueError, match=r"images_background.zip: not an Omniglot zip .*cats/cat.png"):
        omniglot.load(tmp_path / "other", cache=cache)
    (tmp_path / "notzip").mkdir()
    (tmp_path / "notzip" / "images_background.zip").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="images_background.zip: not a zip file"):
        omniglot.load(tmp_path / "notzip", cache=cache)
    with pytest.raises(ValueError, match="holds none of the Omniglot sets"):
        omniglot.find_sources(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        omniglot.find_sources(tmp_path / "missing")


def test_splits(tmp_path, cache):
    write_folder(tmp_path, layout("images_background", ["A", "B", "C"], 4, 2))
    data = omniglot.load(tmp_path, cache=cache)
    train, test = omniglot.split_by_alphabet(data, ["B"])
    assert {a for a, _ in test.names} == {"B"} and len(train.names) == 8
    with pytest.raises(ValueError, match=r"test_alphabets must be alphabets of the data \(A, B, C\), got Z$"):
        omniglot.split_by_alphabet(data, ["Z"])
    train, test = omniglot.paper_split(data, seed=3, train=10)
    assert len(train.names) == 10 and len(test.names) == 2
    assert not set(train.names) & set(test.names)
    assert omniglot.paper_split(data, seed=3, train=10)[1].names == test.names   # seeded
    with pytest.raises(ValueError, match="split the small subsets by alphabet"):
        omniglot.paper_split(data, train=1200)


def test_the_default_split_is_one_documented_rule(tmp_path, cache):
    write_folder(tmp_path, layout("images_background", ["A", "B", "C", "D", "Sanskrit", "Tagalog"], 2, 2))
    data = omniglot.load(tmp_path, cache=cache)
    assert omniglot.default_test_alphabets(data) == ("Sanskrit", "Tagalog")    # the small subsets' three
    others = data.select([i for i, (a, _) in enumerate(data.names) if a in "ABCD"])
    assert omniglot.default_test_alphabets(others) == ("D",)                  # else the last third
    full = omniglot.Omniglot(data.images, data.names, ("images_background", "images_evaluation"))
    assert omniglot.default_test_alphabets(full) is None                      # the paper's split
    train, test, chosen, how = omniglot.split(data)
    assert chosen == ("Sanskrit", "Tagalog") and "default" in how and len(test.names) == 4
    one = data.select([0])
    with pytest.raises(ValueError, match="at least two alphabets"):
        omniglot.default_test_alphabets(one)


class _Server:
    """An HTTP server on 127.0.0.1 serving fixed bytes, optionally cut short."""

    def __init__(self, payload, truncate=False):
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload[:len(payload) // 2] if truncate else payload)

            def log_message(self, *args):
                pass

        self.requests = 0
        self.httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def served_zip(tmp_path):
    path = write_zip(tmp_path / "source.zip", layout("images_background", ["Alpha"], 2, 2))
    payload = path.read_bytes()
    return payload, hashlib.md5(payload).hexdigest()


def test_download_verifies_and_renames(tmp_path, served_zip, cache):
    payload, md5 = served_zip
    server = _Server(payload)
    try:
        root = tmp_path / "data"
        paths = omniglot.download(root, files=["images_background.zip"], url=server.url,
                                  md5={"images_background.zip": md5})
        assert paths == [root / "images_background.zip"]
        assert paths[0].read_bytes() == payload and os.listdir(root) == ["images_background.zip"]
        omniglot.download(root, files=["images_background.zip"], url=server.url,
                          md5={"images_background.zip": md5})
        assert server.requests == 1                          # already there and verified
        assert len(omniglot.load(root, cache=cache).names) == 2
    finally:
        server.close()


@pytest.mark.parametrize("truncate", [False, True])
def test_a_corrupted_or_interrupted_download_leaves_nothing(tmp_path, served_zip, truncate):
    payload, md5 = served_zip
    server = _Server(payload if truncate else payload[:-10] + b"0123456789", truncate=truncate)
    try:
        root = tmp_path / "data"
        # A cut connection surfaces either as a network error or as a short file whose md5 fails.
        with pytest.raises((OSError, ValueError), match="(failed|does not match).*nothing was written"):
            omniglot.download(root, files=["images_background.zip"], url=server.url,
                              md5={"images_background.zip": md5}, timeout=5)
        assert os.listdir(root) == []                        # no partial file left behind
    finally:
        server.close()


@pytest.mark.skipif(not SHARED.is_dir(), reason=f"the Omniglot subsets are not at {SHARED} "
                    "(set MINIREPTILE_OMNIGLOT to their folder)")
def test_the_shared_subsets(cache):
    start = time.perf_counter()
    data = omniglot.load(SHARED, cache=cache)
    cold = time.perf_counter() - start
    assert data.images.shape == (242, 20, 28, 28) and len(data.alphabets) == 8
    train, test = omniglot.split_by_alphabet(data, TEST_ALPHABETS)
    assert len(train.names) == 136 and len(test.names) == 106
    start = time.perf_counter()
    omniglot.load(SHARED, cache=cache)
    assert time.perf_counter() - start < cold                # the warm cache is faster
    pools = omniglot.pools(SHARED, cache=cache)              # the default split is the one above
    assert pools.test_alphabets == tuple(TEST_ALPHABETS)
    assert (pools.train.num_classes, pools.test.num_classes) == (4 * 136, 106)


@pytest.mark.skipif(not (SHARED / "images_background_small1.zip").is_file(), reason="needs the shared subsets")
def test_download_subsets_fetches_and_verifies_the_official_small_sets(tmp_path, monkeypatch, capsys):
    """`download --subsets` asks for the two small background zips by name and keeps them only if
    their md5 sums are the official ones (served here from the shared copies); run again on the
    verified folder, it fetches nothing and says it wrote nothing."""
    from minireptile.cli import main

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(SHARED), **kwargs)

        def log_message(self, *args):
            pass

    httpd = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("MINIREPTILE_OMNIGLOT_URL", f"http://127.0.0.1:{httpd.server_port}/")
        assert main(["download", "--subsets", "--data", str(tmp_path / "omniglot"), "--quiet"]) == 0
        first = capsys.readouterr().out
        assert main(["download", "--subsets", "--data", str(tmp_path / "omniglot"), "--quiet"]) == 0
        again = capsys.readouterr().out
    finally:
        httpd.shutdown()
        httpd.server_close()
    got = sorted(p.name for p in (tmp_path / "omniglot").iterdir())
    assert got == ["images_background_small1.zip", "images_background_small2.zip"]
    assert first.count("images_background_small") == 2 and "wrote:" in first
    assert "wrote no files" in again and "images_background_small" not in again.split("wrote")[1]
    for name in got:
        digest = hashlib.md5((tmp_path / "omniglot" / name).read_bytes()).hexdigest()
        assert digest == omniglot.SUBSETS_MD5[name] == hashlib.md5((SHARED / name).read_bytes()).hexdigest()
