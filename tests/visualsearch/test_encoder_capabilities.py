"""Encoders declare what they can do; callers read the declaration, never probe."""

import pytest

from tests.visualsearch.encoders import PixelEncoder, ProjectedPixelEncoder
from visualsearch import indexing
from visualsearch.encoders import runtimes
from visualsearch.encoders.base import Encoder, TorchEncoder
from visualsearch.encoders.efficientnet import EfficientNetLite0Encoder
from visualsearch.encoders.projection import fit_projection


def test_the_base_encoder_declares_every_capability():
    assert Encoder.supports_projection is False and Encoder.input_size == 224
    plain = PixelEncoder()
    assert plain.projection is None
    for method in (plain.raw_embed, plain.postprocess_versioned):
        with pytest.raises(NotImplementedError, match="does not support a learned projection"):
            method([])
    with pytest.raises(NotImplementedError):
        plain.projection_path()


def test_projection_support_is_read_from_the_declaration(settings):
    settings.VISUALSEARCH_ENCODERS = {
        "pixel": "tests.visualsearch.encoders.PixelEncoder",
        "pixelproj": "tests.visualsearch.encoders.ProjectedPixelEncoder",
    }
    assert EfficientNetLite0Encoder.supports_projection
    assert ProjectedPixelEncoder.supports_projection
    assert indexing.supports_projection("pixelproj") and not indexing.supports_projection("pixel")
    with pytest.raises(ValueError, match="does not support a learned projection"):
        fit_projection(None, None, encoder=PixelEncoder())


def test_the_runtimes_live_apart_from_the_encoders():
    assert TorchEncoder.__init__.__module__ == "visualsearch.encoders.base"
    assert runtimes.RUNTIMES == ("auto", "openvino", "onnxruntime", "torch")
    assert runtimes.AUTO_ORDER[0] == "openvino"
    with pytest.raises(ValueError, match="runtime must be one of"):
        EfficientNetLite0Encoder(runtime="tensorrt")
