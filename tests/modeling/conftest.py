"""Fixtures for the modeling tests: tiny DetectNet_v2 models and spec messages."""

import pytest
from google.protobuf import text_format

from tao_qat.spec.proto.model_config_pb2 import ModelConfig
from tao_qat.spec.proto.regularizer_config_pb2 import RegularizerConfig


def _model_config(text=""):
    """ModelConfig with TAO's usual ResNet-10 settings, overridden by ``text`` (text format)."""
    config = text_format.Parse(
        'arch: "resnet" num_layers: 10 use_batch_norm: true '
        "objective_set { bbox { scale: 35.0 offset: 0.5 } cov {} }",
        ModelConfig(),
    )
    return text_format.Merge(text, config)


def _regularizer_config(kind="L2", weight=1e-3):
    return RegularizerConfig(type=RegularizerConfig.RegularizationType.Value(kind), weight=weight)


@pytest.fixture
def make_model_config():
    """Factory: ModelConfig for ResNet-10 with BN, merged with a text-format override."""
    return _model_config


@pytest.fixture
def make_regularizer_config():
    """Factory: RegularizerConfig(type=kind, weight=weight)."""
    return _regularizer_config


@pytest.fixture(scope="module")
def resnet18_384():
    from tao_qat.modeling.detectnet import build_detectnet_v2

    return build_detectnet_v2(18, 1, (384, 384, 3))
