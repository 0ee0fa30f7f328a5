"""Encoders: the shared interface over every implementation, the registry, the projection.

No database and no downloads: EfficientNet-Lite0 uses the weights shipped in its pip package
(loaded once for the module), the torchvision backbones are built with random weights.
"""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest
from django.core.exceptions import ImproperlyConfigured
from PIL import Image

from visualsearch import encoders
from visualsearch.encoders.efficientnet import EfficientNetLite0Encoder
from visualsearch.encoders.projection import Projection, fit, fit_projection, fit_whitening
from visualsearch.encoders.torchvision_backbones import (
    MobileNetV3LargeEncoder,
    ResNet50Encoder,
)


def make_images(n=5, seed=0):
    """Tiny images of varied sizes and modes, as uploads would be."""
    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        h, w = int(rng.integers(16, 48)), int(rng.integers(16, 48))
        arr = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        im = Image.fromarray(arr)
        images.append(im.convert("L") if i % 3 == 2 else im)
    return images


@pytest.fixture(scope="module")
def artifact_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("artifacts")


@pytest.fixture(scope="module")
def efficientnet(artifact_dir):
    """The real default encoder (packaged weights), exported to ONNX once for the module."""
    return EfficientNetLite0Encoder(
        artifact_dir=artifact_dir, runtime="auto", batch_size=4, num_threads=2
    )


@pytest.fixture(scope="module")
def resnet50(artifact_dir):
    # Random weights at a small input size: the interface does not depend on either, and
    # ResNet-50 at 224 would dominate the test time.
    return ResNet50Encoder(
        pretrained=False, artifact_dir=artifact_dir, runtime="torch", input_size=64
    )


@pytest.fixture(scope="module")
def mobilenet(artifact_dir):
    return MobileNetV3LargeEncoder(
        pretrained=False, artifact_dir=artifact_dir, runtime="torch", input_size=64
    )


@pytest.fixture(params=["efficientnet", "resnet50", "mobilenet"])
def encoder(request):
    return request.getfixturevalue(request.param)


# -- behaviour shared by every encoder ------------------------------------------------------


def test_embed_shape_dtype_and_norm(encoder):
    vectors = encoder.embed(make_images(5))
    assert vectors.shape == (5, encoder.dim)
    assert vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    # Different images must give different vectors (no collapsed features).
    sims = vectors @ vectors.T
    assert sims[np.triu_indices(5, 1)].max() < 0.9999


def test_embed_is_deterministic_and_batch_independent(encoder):
    images = make_images(5, seed=1)
    together = encoder.embed(images)  # batches of 4 + 1 for EfficientNet
    alone = np.concatenate([encoder.embed([im]) for im in images])
    np.testing.assert_allclose(together, alone, atol=1e-4)


def test_embed_empty_list(encoder):
    assert encoder.embed([]).shape == (0, encoder.dim)


def test_weights_hash_is_short_hex_and_stable(encoder):
    h = encoder.weights_hash
    assert 8 <= len(h) <= 64
    int(h, 16)
    assert encoder.weights_hash == h


# -- registry ------------------------------------------------------------------------------


def test_importing_encoders_does_not_import_torch():
    code = (
        "import sys, visualsearch.encoders, visualsearch.imaging, visualsearch.evaluation;"
        "assert 'torch' not in sys.modules and 'onnxruntime' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_available_encoders():
    assert encoders.available_encoders() == ["efficientnet_lite0", "mobilenet_v3_large", "resnet50"]


def test_get_encoder_is_cached_and_follows_settings(settings):
    encoders.clear_cache()
    settings.VISUALSEARCH_ENCODER = "mobilenet_v3_large"
    enc = encoders.get_encoder()
    assert enc.name == "mobilenet_v3_large" and enc.dim == 960
    assert encoders.get_encoder("mobilenet_v3_large") is enc
    assert encoders.get_encoder("efficientnet_lite0").dim == 1280
    encoders.clear_cache()


def test_unknown_encoder():
    with pytest.raises(ImproperlyConfigured, match="Available encoders: efficientnet_lite0"):
        encoders.get_encoder("clip-giant")
    with pytest.raises(ValueError, match="clip-giant"):
        encoders.get_encoder("clip-giant")


# -- EfficientNet-Lite0 --------------------------------------------------------------------


def test_efficientnet_auto_runs_on_openvino_with_cached_export(efficientnet, artifact_dir):
    efficientnet.embed(make_images(1))
    assert efficientnet.runtime == "openvino"  # the fastest runtime installed
    path = efficientnet.onnx_path()
    assert path.parent == artifact_dir and path.is_file()
    assert not list(artifact_dir.glob("*.tmp"))  # written atomically


@pytest.fixture(scope="module")
def eager_efficientnet(artifact_dir):
    return EfficientNetLite0Encoder(
        artifact_dir=artifact_dir, runtime="torch", batch_size=4, num_threads=2
    )


@pytest.mark.parametrize("runtime", ["openvino", "onnxruntime"])
def test_efficientnet_fast_runtimes_match_torch(runtime, artifact_dir, eager_efficientnet):
    images = make_images(5, seed=2)  # batches of 4 + 1: uneven splits across requests
    fast = EfficientNetLite0Encoder(
        artifact_dir=artifact_dir, runtime=runtime, batch_size=4, num_threads=2
    )
    a, b = fast.embed(images), eager_efficientnet.embed(images)
    assert (fast.runtime, eager_efficientnet.runtime) == (runtime, "torch")
    assert np.sum(a * b, axis=1).min() > 0.9999


def test_openvino_runner_is_safe_across_threads(efficientnet):
    """Each thread gets its own infer requests: concurrent uploads must not mix results."""
    from concurrent.futures import ThreadPoolExecutor

    batches = [make_images(3, seed=10 + i) for i in range(4)]
    expected = [efficientnet.embed(b) for b in batches]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(efficientnet.embed, batches * 2))
    assert efficientnet.runtime == "openvino"
    for i, vectors in enumerate(got):
        np.testing.assert_allclose(vectors, expected[i % 4], atol=1e-5)


_TELEMETRY_PROBE = """
import sys, threading
from django.conf import settings
settings.configure(VISUALSEARCH_OPENVINO_TELEMETRY={allowed})
from visualsearch.encoders.runtimes import import_openvino
import_openvino()
from openvino.tools.ovc import telemetry_utils
print(type(sys.modules.get("openvino_telemetry")).__name__, telemetry_utils.tm.__name__,
      sorted(t.name.split("_")[0] for t in threading.enumerate()))
"""


def _telemetry_probe(allowed, env):
    result = subprocess.run(
        [sys.executable, "-c", _TELEMETRY_PROBE.format(allowed=allowed)],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return result.stdout.strip().split(maxsplit=2)


def test_openvino_is_imported_without_its_telemetry():
    """Importing openvino would send usage telemetry to Google Analytics from a process
    forked off a helper thread (a fork that hung the development server under load); the
    converter gets its no-op stand-in instead, and no helper thread starts. Outside CI,
    where the telemetry would otherwise be on."""
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "TF_BUILD", "JENKINS_URL")}
    module, telemetry, threads = _telemetry_probe(False, env)
    assert module == "NoneType"
    assert telemetry == "openvino.tools.ovc.telemetry_stub"
    assert threads == "['MainThread']"


def test_openvino_telemetry_can_be_left_to_openvino():
    # With CI=true OpenVINO's own check declines to send anything from this test.
    module, telemetry, _ = _telemetry_probe(True, {**os.environ, "CI": "true"})
    assert (module, telemetry) == ("module", "openvino_telemetry")


def test_unknown_runtime_is_refused():
    with pytest.raises(ValueError, match="runtime must be one of"):
        EfficientNetLite0Encoder(runtime="tensorrt")


def test_efficientnet_normalisation_is_tf_style():
    # The packaged TF-ported weights expect pixels in [-1, 1].
    enc = EfficientNetLite0Encoder(artifact_dir="/nonexistent")
    batch = enc.preprocess([Image.new("RGB", (8, 8), (0, 255, 128))])
    assert batch.shape == (1, 3, 224, 224)
    np.testing.assert_allclose(batch[0, :, 0, 0], [-1.0, 1.0, 128 / 127.5 - 1], atol=1e-6)


# -- projection ----------------------------------------------------------------------------


def clustered_features(n_per_class=30, n_classes=4, dim=32, seed=0, spread=0.3):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim))
    labels = np.repeat(np.arange(n_classes), n_per_class)
    x = centres[labels] * spread + rng.normal(size=(len(labels), dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def test_projection_sharpens_categories_and_keeps_norm():
    x, labels = clustered_features()
    projection = fit(x, labels, gamma=4.0)
    assert projection.basis.shape == (32, 3)  # n_classes - 1 directions
    y = projection.apply(x)
    assert y.shape == x.shape
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, rtol=1e-5)

    def same_class_margin(v):
        sims = v @ v.T
        same = labels[:, None] == labels[None, :]
        return sims[same].mean() - sims[~same].mean()

    assert same_class_margin(y) > same_class_margin(x) + 0.1
    # gamma=0 is the identity.
    np.testing.assert_allclose(fit(x, labels, gamma=0.0).apply(x), x, atol=1e-6)


def test_projection_round_trip_without_pickle(tmp_path):
    x, labels = clustered_features()
    projection = fit(x, labels)
    path = projection.save(tmp_path / "p.npz")
    loaded = Projection.load(path)
    assert loaded.digest == projection.digest
    assert loaded.whitening is None and loaded.pair_ids == ()
    with np.load(path, allow_pickle=False) as data:
        assert sorted(data.files) == [
            "basis",
            "category_coef",
            "category_intercept",
            "category_labels",
            "pair_ids",
            "scale",
        ]
    with pytest.raises(ValueError, match="at least two"):
        fit(x, np.zeros(len(x)))


def test_category_prior_names_the_category_of_new_items(tmp_path):
    x, labels = clustered_features(n_per_class=60, spread=0.8)
    train = np.arange(len(x)) % 3 != 0  # a third held out
    projection = fit(x[train], labels[train], gamma=1.0)
    assert projection.category_prior and projection.category_labels == ("0", "1", "2", "3")
    log_p = projection.category_log_probabilities(projection.apply(x[~train]))
    assert log_p.shape == (int((~train).sum()), 4)
    np.testing.assert_allclose(np.exp(log_p).sum(axis=1), 1.0, rtol=1e-6)
    predicted = np.asarray(projection.category_labels)[log_p.argmax(axis=1)].astype(int)
    assert np.mean(predicted == labels[~train]) > 0.9
    # Bookkeeping beside the maps: the digest (hence the stored vectors) ignores it.
    without = fit(x[train], labels[train], gamma=1.0, prior_c=None)
    assert not without.category_prior and without.digest == projection.digest
    with pytest.raises(ValueError, match="no category prior"):
        without.category_log_probabilities(x)
    loaded = Projection.load(projection.save(tmp_path / "p.npz"))
    assert loaded.category_labels == projection.category_labels
    np.testing.assert_allclose(
        loaded.category_log_probabilities(x), projection.category_log_probabilities(x), atol=1e-5
    )
    np.savez(
        tmp_path / "bad.npz",
        basis=projection.basis,
        scale=projection.scale,
        category_coef=projection.category_coef[:, :2],
        category_intercept=projection.category_intercept,
        category_labels=np.asarray(projection.category_labels),
    )
    # A damaged prior is dropped; the maps, which the stored vectors depend on, still load.
    damaged = Projection.load(tmp_path / "bad.npz")
    assert not damaged.category_prior and damaged.digest == projection.digest


@pytest.mark.parametrize("n_classes", [2, 3, 5])
def test_category_prior_folds_the_standardisation_into_one_map(n_classes):
    """The stored map gives the fitted model's own probabilities for raw stored vectors."""
    from sklearn.linear_model import LogisticRegression

    from visualsearch.encoders.category_prior import fit_category_prior

    x, labels = clustered_features(n_classes=n_classes, spread=0.5)
    prior = Projection(basis=np.zeros((32, 1), np.float32), scale=np.zeros(1, np.float32))
    prior = dataclasses.replace(prior, **fit_category_prior(x, labels, c=0.1))
    mean, sd = x.astype(np.float64).mean(axis=0), x.astype(np.float64).std(axis=0) + 1e-8
    model = LogisticRegression(C=0.1, max_iter=500).fit((x - mean) / sd, labels.astype(str))
    expected = model.predict_log_proba((x - mean) / sd)
    assert prior.category_labels == tuple(model.classes_)
    np.testing.assert_allclose(prior.category_log_probabilities(x), expected, atol=1e-4)


def test_category_prior_of_two_categories():
    x, labels = clustered_features(n_classes=2)
    projection = fit(x, labels)
    log_p = projection.category_log_probabilities(projection.apply(x))
    assert log_p.shape == (len(x), 2)
    predicted = np.asarray(projection.category_labels)[log_p.argmax(axis=1)].astype(int)
    assert np.mean(predicted == labels) > 0.9


def shopper_pairs(n=200, dim=32, seed=0):
    """Items, and "photos" of them that wander along a few nuisance directions far more
    than items differ along them: what a tilt or a recompression does to raw features."""
    rng = np.random.default_rng(seed)
    items = rng.normal(size=(n, dim))
    nuisance = np.linalg.qr(rng.normal(size=(dim, 4)))[0]
    photos = items + 0.3 * rng.normal(size=(n, dim)) + 6.0 * rng.normal(size=(n, 4)) @ nuisance.T

    def unit(a):
        return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)

    return unit(items), unit(photos)


def hit_at_1(queries, gallery):
    return float(np.mean(np.argmax(queries @ gallery.T, axis=1) == np.arange(len(queries))))


def test_whitening_learned_from_pairs_finds_unseen_items_photos():
    items, photos = shopper_pairs(400)
    train, test = slice(0, 200), slice(200, 400)  # learned on other items than it is tested on
    mean, whitening = fit_whitening(items[train], photos[train])
    assert mean.shape == (32,) and whitening.shape == (32, 32)
    np.testing.assert_allclose(whitening, whitening.T, atol=1e-5)
    labels = np.arange(200) % 4
    projection = fit(items[train], labels, pairs=(items[train], photos[train]), rerank_gamma=0.0)
    assert projection.reranks

    def invariant(x):  # what photo search re-ranks with, from the stored vectors
        return projection.rerank_vectors(projection.apply(x))

    raw = hit_at_1(photos[test], items[test])
    stored = hit_at_1(projection.apply(photos[test]), projection.apply(items[test]))
    learned = hit_at_1(invariant(photos[test]), invariant(items[test]))
    assert raw < 0.7 and stored < 0.7 and learned > raw + 0.2


def test_stored_vectors_give_back_the_raw_features():
    x, labels = clustered_features()
    projection = fit(x, labels, gamma=4.0)
    y = projection.apply(x)
    assert not np.allclose(y, x, atol=1e-3)
    np.testing.assert_allclose(projection.unapply(y), x, atol=1e-5)
    with pytest.raises(ValueError, match="cannot re-rank"):
        projection.rerank_vectors(y)


def test_projection_with_reranking_round_trips_and_digest_follows_the_maps(tmp_path):
    items, photos = shopper_pairs()
    labels = np.arange(len(items)) % 4
    plain = fit(items, labels)
    reranking = fit(items, labels, pairs=(items, photos), pair_ids=[7, 3])
    # The stored vectors are the same map: only the re-ranking differs.
    np.testing.assert_allclose(reranking.apply(items), plain.apply(items), atol=1e-6)
    assert reranking.digest != plain.digest and not plain.reranks
    loaded = Projection.load(reranking.save(tmp_path / "w.npz"))
    assert loaded.digest == reranking.digest and loaded.pair_ids == (7, 3)
    np.testing.assert_allclose(
        loaded.rerank_vectors(photos), reranking.rerank_vectors(photos), atol=1e-6
    )
    # The products a projection learned from are bookkeeping, not part of the maps.
    assert dataclasses.replace(reranking, pair_ids=(1,)).digest == reranking.digest
    np.savez(tmp_path / "bad.npz", basis=plain.basis, scale=plain.scale, mean=reranking.mean)
    with pytest.raises(ValueError, match="not a valid projection"):
        Projection.load(tmp_path / "bad.npz")


@pytest.mark.parametrize(
    "anchors, views, shrinkage, message",
    [
        (np.zeros((5, 3)), np.zeros((4, 3)), 0.1, "matching"),
        (np.zeros((1, 3)), np.zeros((1, 3)), 0.1, "n >= 2"),
        (np.ones((5, 3)), np.ones((5, 3)), 0.0, "shrinkage must be positive"),
    ],
)
def test_fit_whitening_rejects_bad_input(anchors, views, shrinkage, message):
    with pytest.raises(ValueError, match=message):
        fit_whitening(anchors, views, shrinkage=shrinkage)


def test_fit_projection_changes_encoder_identity(efficientnet, tmp_path):
    enc = EfficientNetLite0Encoder(artifact_dir=tmp_path, runtime="torch")
    enc._run, enc.runtime = efficientnet._run, efficientnet.runtime  # reuse the loaded model
    images = make_images(12, seed=3)
    labels = np.arange(12) % 3
    raw = enc.raw_embed(images)
    before = enc.weights_hash
    np.testing.assert_allclose(enc.embed(images), raw, atol=1e-6)

    path = fit_projection(raw, labels, encoder=enc)
    assert path.parent == tmp_path and path.suffix == ".npz"
    assert enc.weights_hash != before
    projected = enc.embed(images)
    assert projected.shape == (12, 1280)
    assert not np.allclose(projected, raw, atol=1e-4)
    np.testing.assert_allclose(projected, Projection.load(path).apply(raw), atol=1e-6)
    # Switching the projection off gives back the raw identity.
    assert EfficientNetLite0Encoder(artifact_dir=tmp_path, use_projection=False).weights_hash == (
        before
    )


# -- torchvision backbones -------------------------------------------------------------------


def test_torchvision_dims():
    assert ResNet50Encoder.dim == 2048
    assert MobileNetV3LargeEncoder.dim == 960


def test_torchvision_normalisation_is_imagenet():
    enc = MobileNetV3LargeEncoder(pretrained=False, artifact_dir="/nonexistent")
    batch = enc.preprocess([Image.new("RGB", (4, 4), (255, 0, 0))])
    np.testing.assert_allclose(
        batch[0, :, 1, 1],
        [(1 - 0.485) / 0.229, (0 - 0.456) / 0.224, (0 - 0.406) / 0.225],
        rtol=1e-5,
    )


def test_torchvision_missing_weights_is_a_clear_error(settings, monkeypatch, tmp_path):
    import torch

    monkeypatch.setattr(torch.hub, "_hub_dir", str(tmp_path / "hub"))
    settings.VISUALSEARCH_WEIGHTS = {}
    enc = ResNet50Encoder(artifact_dir=tmp_path)
    with pytest.raises(ImproperlyConfigured, match="never downloaded"):
        _ = enc.weights_hash
    settings.VISUALSEARCH_WEIGHTS = {"resnet50": str(tmp_path / "nope.pth")}
    with pytest.raises(ImproperlyConfigured, match="nope.pth"):
        enc.build_module()


def test_torchvision_loads_configured_weights_file(settings, tmp_path, mobilenet):
    import torch
    import torchvision

    path = tmp_path / "mnv3.pth"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        torch.save(torchvision.models.mobilenet_v3_large(weights=None).state_dict(), path)
    settings.VISUALSEARCH_WEIGHTS = {"mobilenet_v3_large": str(path)}
    enc = MobileNetV3LargeEncoder(artifact_dir=tmp_path, runtime="torch", input_size=64)
    assert enc.weights_hash != mobilenet.weights_hash
    images = make_images(2)
    # Same seed-0 weights as the random fixture, so the same features.
    np.testing.assert_allclose(enc.embed(images), mobilenet.embed(images), atol=1e-5)


def test_category_prior_of_a_large_catalogue_keeps_every_category(monkeypatch):
    """Above PRIOR_MAX_ITEMS the prior is fitted on a sample with a share of each category:
    even one far smaller than the others keeps a column."""
    from visualsearch.encoders import category_prior

    monkeypatch.setattr(category_prior, "PRIOR_MAX_ITEMS", 40)
    x, labels = clustered_features(n_per_class=100, n_classes=3, spread=0.8)
    rare = np.concatenate([np.flatnonzero(labels < 2), np.flatnonzero(labels == 2)[:5]])
    fitted = category_prior.fit_category_prior(x[rare], labels[rare])
    assert fitted["category_labels"] == ("0", "1", "2")
    assert fitted["category_coef"].shape == (32, 3)
