"""QAT of a pruned graph loaded with ``load_graph``: same placement, pruned channel counts."""

import numpy as np
from google.protobuf import text_format
from qat_helpers import expected_placement, walk_qat_model

from tao_qat.modeling.model_io import save_model
from tao_qat.modeling.pretrained import build_or_load_model
from tao_qat.pruning.plan import PruneSettings
from tao_qat.pruning.run_prune import prune_model
from tao_qat.quantization import create_qat_model, extract_quantization
from tao_qat.spec.proto.model_config_pb2 import ModelConfig


def test_pruned_resnet18_loaded_with_load_graph(make_detectnet, images, tmp_path):
    # Real pruning (tao_qat.pruning, threshold 0.5 on randomised filter norms) -> .hdf5 ->
    # build_or_load_model(load_graph: true) -> QAT. Channel counts are no longer 64/128/...
    pruned, _ = prune_model(make_detectnet(18, seed=4), PruneSettings(threshold=0.5))
    path = save_model(pruned, tmp_path / "pruned.hdf5")
    model_config = text_format.Parse(
        f'arch: "resnet" num_layers: 18 use_batch_norm: true load_graph: true '
        f'pretrained_model_file: "{path}" '
        "objective_set { bbox { scale: 35.0 offset: 0.5 } cov {} }",
        ModelConfig(),
    )
    loaded = build_or_load_model(model_config, None, 2, images.shape[1:])
    widths = {layer.name: layer.filters for layer in loaded.layers if hasattr(layer, "filters")}
    assert widths["block_1a_conv_1"] < 64 and widths["block_4a_conv_1"] < 512

    qat = create_qat_model(loaded)
    found = walk_qat_model(qat)
    activations, weights = expected_placement((2, 2, 2, 2), all_projections=False)
    assert sorted(found["activations"]) == sorted(activations)
    assert sorted(found["weights"]) == sorted(weights)

    float_model, activation_amax, weight_amax = extract_quantization(qat)
    assert sorted(activation_amax) == sorted(activations)
    for name in weights:
        assert weight_amax[name].shape == (widths[name],)
    for peeled, original in zip(float_model(images), loaded(images), strict=True):
        np.testing.assert_array_equal(peeled.numpy(), original.numpy())
