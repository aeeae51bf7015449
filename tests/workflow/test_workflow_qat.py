"""QAT retraining through ``qat train`` (``training_config.enable_qat``), starting from a
trained float model loaded with ``load_graph`` as TAO's QAT retrain spec does."""

import pytest
from synthetic_workflow import experiment_spec_text

from tao_qat.common.errors import SpecError


@pytest.fixture(scope="module")
def qat_trained(trained_project):
    from tao_qat.training.trainer import TrainOptions, run_train

    root, _, results, _ = trained_project
    text = experiment_spec_text(width=64, height=64, epochs=1, max_lr=5e-4,
                                pretrained_model_file=str(results / "weights" / "model.hdf5"),
                                load_graph=True)
    spec = root / "experiment_qat.txt"
    spec.write_text(text.replace("  num_epochs: 1\n", "  num_epochs: 1\n  enable_qat: true\n"))
    result = run_train(TrainOptions(spec_path=str(spec), results_dir=str(root / "qat"),
                                    echo=lambda _: None))
    return spec, result


def test_qat_training_writes_a_quantized_model_that_loads_and_evaluates(qat_trained):
    from tao_qat.inference.run_evaluate import EvaluateOptions, run_evaluate
    from tao_qat.modeling.model_io import load_model_file
    from tao_qat.quantization import extract_quantization, is_qat_model

    spec, result = qat_trained
    model = load_model_file(result.model_path)  # QAT layers load without extra arguments
    assert is_qat_model(model)
    assert {"output_cov", "output_bbox"} <= {layer.name for layer in model.layers}
    _, activation_amax, weight_amax = extract_quantization(model)
    assert "input_1" in activation_amax and activation_amax["input_1"] > 0
    assert "output_cov" not in weight_amax and "output_bbox" not in weight_amax
    evaluated = run_evaluate(EvaluateOptions(spec_path=str(spec),
                                             model_path=str(result.model_path),
                                             echo=lambda _: None))
    assert evaluated.mean_average_precision == pytest.approx(
        result.validation[1].mean_average_precision, abs=1e-9)


def test_enable_qat_refuses_an_already_quantized_model(qat_trained, tmp_path):
    from tao_qat.training.trainer import TrainOptions, run_train

    spec, result = qat_trained
    text = spec.read_text()
    model_line = next(line for line in text.splitlines() if "pretrained_model_file" in line)
    again = spec.parent / "experiment_qat_again.txt"  # relative data paths resolve from here
    again.write_text(text.replace(model_line,
                                  f'  pretrained_model_file: "{result.model_path}"'))
    with pytest.raises(SpecError, match="already quantized"):
        run_train(TrainOptions(spec_path=str(again), results_dir=str(tmp_path / "r"),
                               echo=lambda _: None))
