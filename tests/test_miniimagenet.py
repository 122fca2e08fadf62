"""Mini-ImageNet on generated data: the three layouts, the cache, the errors, the pool, the net's
gradients, and a learnability run of the real training loop."""
import dataclasses
import os
import pickle

import numpy as np
import pytest

import minireptile as mr
from minireptile.tasks import experiment, fewshot, miniimagenet
from minireptile.tasks.miniimagenet import MiniImageNetConfig
from miniimagenet_tree import class_images, dataset, jpeg, write_csv, write_folders, write_pickles


@pytest.fixture(scope="module")
def data():
    return dataset()


@pytest.fixture(scope="module")
def layouts(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("miniimagenet")
    return {"folders": write_folders(root / "folders", data), "csv": write_csv(root / "csv", data),
            "pickle": write_pickles(root / "pickle", data)}


def arrays(loaded):
    return {split: (np.asarray(pool.images), pool.names, list(pool.counts)) for split, pool in loaded.pools.items()}


def test_the_three_layouts_load_to_identical_arrays(layouts, tmp_path):
    loaded = {name: miniimagenet.load(root, cache=tmp_path) for name, root in layouts.items()}
    reference = arrays(loaded["folders"])
    assert set(reference) == {"train", "val", "test"}
    images, names, counts = reference["train"]
    assert images.dtype == np.uint8 and images.shape == (24, 84, 84, 3)
    assert names == [f"n{c:08d}" for c in range(4)] and counts == [6] * 4
    for name in ("csv", "pickle"):
        assert {s: l for s, (_, _, l) in arrays(loaded[name]).items()} == {s: l for s, (_, _, l) in reference.items()}
        for split, (images, names, _) in arrays(loaded[name]).items():
            assert names == reference[split][1]
            np.testing.assert_array_equal(images, reference[split][0])
    assert {layout for layout, _ in loaded["csv"].sources.values()} == {"csv"}
    assert isinstance(loaded["pickle"].pools["train"].images, np.memmap)       # memory-mapped, not held


def test_a_python2_style_pickle_of_protocol_2_loads_too(data, tmp_path):
    root = write_pickles(tmp_path / "p2", data, protocol=2)
    loaded = miniimagenet.load(root, cache=tmp_path / "cache")
    assert loaded.pools["test"].images.shape == (18, 84, 84, 3)


def test_the_cache_is_used_on_the_second_load_and_rebuilt_when_a_file_changes(data, tmp_path, monkeypatch):
    root, cache = write_folders(tmp_path / "data", data), tmp_path / "cache"
    first = miniimagenet.load(root, cache=cache)

    def no_reading(*args, **kwargs):
        raise AssertionError("an image was read although the cache holds it")
    with monkeypatch.context() as m:
        m.setattr(miniimagenet, "load_image", no_reading)
        second = miniimagenet.load(root, cache=cache)
    assert second.cache == first.cache
    np.testing.assert_array_equal(second.pools["test"].images, first.pools["test"].images)
    changed = root / "test" / "n00000006" / "n00000006_0000.JPEG"
    changed.write_bytes(jpeg(np.zeros((84, 84, 3), dtype=np.uint8)))
    third = miniimagenet.load(root, cache=cache)
    assert third.cache != first.cache and not first.cache.exists()          # the stale cache is removed
    assert third.pools["test"].images[0].max() < 10                          # the new pixels
    assert [p.name for p in cache.iterdir()] == [third.cache.name]


def test_images_of_another_size_or_mode_become_84_by_84_rgb(tmp_path):
    from PIL import Image
    Image.new("L", (120, 90), 200).save(tmp_path / "grey.png")
    image = miniimagenet.load_image(tmp_path / "grey.png")
    assert image.shape == (84, 84, 3) and image.dtype == np.uint8 and (image == 200).all()


def test_an_interrupted_cache_build_leaves_nothing(data, tmp_path, monkeypatch):
    root, cache = write_folders(tmp_path / "data", data), tmp_path / "cache"
    calls = []

    def interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return np.zeros((84, 84, 3), np.uint8)
    monkeypatch.setattr(miniimagenet, "load_image", interrupt)
    with pytest.raises(KeyboardInterrupt):
        miniimagenet.load(root, cache=cache)
    assert list(cache.iterdir()) == []


# ----------------------------------------------------------------------------- errors, one line each

def test_a_corrupt_image_is_named(data, tmp_path):
    root = write_folders(tmp_path / "data", data)
    bad = root / "train" / "n00000001" / "n00000001_0003.JPEG"
    bad.write_bytes(b"not a jpeg")
    with pytest.raises(ValueError, match=f"{bad}: not a readable image"):
        miniimagenet.load(root, cache=tmp_path / "cache")


def test_a_split_file_naming_a_missing_image_is_refused_with_its_line(data, tmp_path):
    root = write_csv(tmp_path / "data", data)
    (root / "images" / "n00000002_0004.JPEG").unlink()
    with pytest.raises(ValueError, match=r"train.csv line 18: .*images/n00000002_0004.JPEG does not exist"):
        miniimagenet.load(root, cache=tmp_path / "cache")


def test_a_split_file_with_another_header_is_refused(data, tmp_path):
    root = write_csv(tmp_path / "data", data)
    (root / "val.csv").write_text("image,class\nx.jpg,n1\n")
    with pytest.raises(ValueError, match="val.csv: not a Mini-ImageNet split file .*got image,class"):
        miniimagenet.load(root, cache=tmp_path / "cache")


class _Exploit:
    def __reduce__(self):
        return (os.system, ("touch exploited",))


def test_a_pickle_that_would_run_code_is_refused_without_running_it(data, tmp_path, monkeypatch):
    root = write_pickles(tmp_path / "data", data)
    with open(root / "mini-imagenet-cache-val.pkl", "wb") as f:
        pickle.dump({"image_data": _Exploit(), "class_dict": {}}, f)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"mini-imagenet-cache-val.pkl: not a Mini-ImageNet cache pickle "
                                         r"\(it names posix.system"):
        miniimagenet.load(root, cache=tmp_path / "cache")
    assert not (tmp_path / "exploited").exists()


@pytest.mark.parametrize("content,match", [
    ([1, 2, 3], "expected a dict with image_data and class_dict"),
    ({"image_data": np.zeros((2, 84, 84), np.uint8), "class_dict": {}}, r"image_data must be a uint8 array"),
    ({"image_data": np.zeros((2, 84, 84, 3), np.uint8), "class_dict": {"n1": [0, 5]}},
     r"class n1 lists rows outside image_data \(0..1\)"),
])
def test_foreign_pickles_are_refused(data, tmp_path, content, match):
    root = write_pickles(tmp_path / "data", data)
    with open(root / "mini-imagenet-cache-test.pkl", "wb") as f:
        pickle.dump(content, f)
    with pytest.raises(ValueError, match=match):
        miniimagenet.load(root, cache=tmp_path / "cache")


def test_a_folder_without_mini_imagenet_is_refused(tmp_path):
    (tmp_path / "train").mkdir()
    with pytest.raises(ValueError, match="holds no Mini-ImageNet train and test split"):
        miniimagenet.find_sources(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        miniimagenet.find_sources(tmp_path / "nowhere")


def test_a_class_with_too_few_images_for_the_shots_is_named(data, tmp_path):
    root = write_folders(tmp_path / "data", data)
    for extra in sorted((root / "test" / "n00000007").iterdir())[2:]:
        extra.unlink()                                       # 2 images left: 1 shot + 1 query at most
    pools = miniimagenet.pools(root, cache=tmp_path / "cache")
    check = lambda **changes: MiniImageNetConfig(**({"ways": 2} | changes)).check_data(pools)
    with pytest.raises(experiment.ConfigError) as err:
        check(final_shots=(1, 5))
    assert (err.value.name, err.value.got) == ("final_shots", 5)
    assert "class n00000007 of the test data has 2 images and one is the query" in err.value.expected
    with pytest.raises(experiment.ConfigError) as err:
        check(final_shots=(1,))
    assert (err.value.name, err.value.got) == ("train_shots", 15)
    assert "class n00000000 of the training data has 6 images" in err.value.expected
    with pytest.raises(experiment.ConfigError, match=r"the validation data has 2 classes"):
        check(ways=3, final_shots=(1,), train_shots=6)
    check(final_shots=(1,), train_shots=6)


# ----------------------------------------------------------------------------- the pool

def test_the_pool_draws_distinct_images_of_classes_with_different_counts():
    counts = [3, 7, 5, 4]
    images = np.arange(sum(counts), dtype=np.uint8)[:, None, None, None] * np.ones((1, 6, 6, 3), np.uint8)
    pool = fewshot.ImagePool(images, counts, names=list("abcd"))
    classes, drawings = pool.draw(np.random.default_rng(0), 200, 3, 3)
    assert (np.sort(classes, axis=1)[:, 1:] != np.sort(classes, axis=1)[:, :-1]).all()
    assert (drawings < np.array(counts)[classes][..., None]).all()
    assert all(len(set(d)) == 3 for d in drawings.reshape(-1, 3))
    x, labels = pool.gather(classes, drawings)
    assert x.shape == (200, 3, 3, 3, 6, 6) and x.dtype == np.float32 and labels.shape == (200, 3, 3)
    rows = pool.starts[classes][..., None] + drawings
    np.testing.assert_allclose(x[..., 0, 0, 0], rows / 255, rtol=1e-6)
    assert pool.smallest() == (3, "a")
    with pytest.raises(ValueError, match=r"shots must lie in \[1, 3\] \(class a has 3 images\), got 4"):
        pool.draw(np.random.default_rng(0), 1, 2, 4)


def test_with_equal_counts_the_pool_draws_the_tasks_a_class_pool_draws():
    images = np.random.default_rng(0).integers(0, 256, (5 * 4, 6, 6, 3), dtype=np.uint8)
    mini = fewshot.ImagePool(images, [4] * 5)
    plain = fewshot.ClassPool(images.reshape(5, 4, 6, 6, 3)[..., 0])
    for a, b in zip(mini.draw(np.random.default_rng(3), 8, 3, 2), plain.draw(np.random.default_rng(3), 8, 3, 2)):
        np.testing.assert_array_equal(a, b)


def test_workers_map_the_cache_file_instead_of_copying_the_images(layouts, tmp_path):
    from minireptile.workers import Workers
    pools = miniimagenet.pools(layouts["folders"], cache=tmp_path)
    net = mr.miniimagenet_net(3, width=4, image_size=84)
    theta = net.init(np.random.default_rng(0), dtype=np.float32)
    protocol = fewshot.Protocol(ways=3, shots=1, inner_iters=2, batch_size=3)
    alone = fewshot.evaluate(net, theta, pools.test, np.random.default_rng(1), protocol, 4)
    with Workers.local(2, threads=1) as workers:
        together = fewshot.evaluate(net, theta, pools.test, np.random.default_rng(1), protocol, 4, workers=workers)
        (_, path, _), _ = workers.share(pools.test)
        copied = [f for f in os.listdir(workers._folder) if f.endswith(".npy")]   # the workers' shared files
    assert path == pools.test.path and copied == []                         # nothing copied
    for mine, theirs in zip(together, alone):
        assert mine.mode == theirs.mode and mine.accuracy == pytest.approx(theirs.accuracy, abs=1e-6)


# ----------------------------------------------------------------------------- the net

def test_the_paper_net_has_the_papers_shapes():
    net = mr.miniimagenet_net(5)
    assert net.unflatten(net.init(np.random.default_rng(0)))["17.W"].shape == (800, 5)
    theta = net.init(np.random.default_rng(0), dtype=np.float32)
    y, _ = net.forward(np.stack([theta, theta]), np.zeros((2, 3, 3, 84, 84), np.float32))
    assert y.shape == (2, 3, 5)
    with pytest.raises(ValueError, match="too small"):
        mr.miniimagenet_net(5, image_size=8)


@pytest.mark.parametrize("tasks", [None, 2])
@pytest.mark.slow
def test_the_net_gradient_with_odd_pooling_and_rgb_matches_central_differences(tasks):
    net = mr.miniimagenet_net(3, width=3, blocks=2, image_size=21)      # 21 -> 10 -> 5: pooling drops a row
    rng = np.random.default_rng(1)
    lead = () if tasks is None else (tasks,)
    theta = np.stack([net.init(rng) for _ in range(tasks or 1)]).reshape(lead + (net.num_params,))
    x = rng.normal(size=lead + (4, 3, 21, 21))
    labels = rng.integers(0, 3, lead + (4,))
    assert net.forward(theta, x)[0].shape == lead + (4, 3)
    for t in range(tasks or 1):
        pick = (lambda a: a[t]) if tasks else (lambda a: a)

        def loss(th):
            full = theta.copy()
            if tasks:
                full[t] = th
            else:
                full = th
            return float(np.sum(net.loss_and_grad(full, x, labels, mr.softmax_cross_entropy)[0]))
        grad = pick(net.loss_and_grad(theta, x, labels, mr.softmax_cross_entropy)[1])
        assert mr.rel_error(grad, mr.numerical_gradient(loss, pick(theta).copy())) < 1e-6


# ----------------------------------------------------------------------------- learnability

@pytest.mark.slow
def test_meta_training_on_a_learnable_family_beats_the_random_initialization():
    """Colour-and-shape classes at 16 x 16: 300 Reptile iterations of the real loop lift held-out
    accuracy (new classes, 3 inner steps from 1 shot) clearly above the random initialization's."""
    rng = np.random.default_rng(0)
    train = class_images(rng, 0, 24, 10, 16)                   # 24 training classes, 8 test classes
    test = class_images(rng, 24, 8, 10, 16)
    pool = lambda images: fewshot.ImagePool(images.reshape((-1,) + images.shape[2:]), [10] * len(images))
    train_pool, test_pool = pool(train), pool(test)
    net = mr.miniimagenet_net(5, width=16, image_size=16)
    config = MiniImageNetConfig(iterations=300, inner_iters=4, train_shots=5, inner_batch=10, eval_iters=3,
                                eval_batch=5, eval_every=0, meta_step=0.5)
    result = experiment.train(net, config, train_pool, test_pool, progress=False)
    scored = dataclasses.replace(config, eval_tasks=200, seed=5, final_shots=(1,))
    score = lambda theta: experiment.final_evaluation(net, theta, test_pool, scored, progress=False)[0].scores
    random_init = score(net.init(np.random.default_rng(config.seed), dtype=np.float32))
    trained = score(result.theta)
    for mine, before in zip(trained, random_init):
        assert mine.accuracy > before.accuracy + 0.15, (mine, before)
