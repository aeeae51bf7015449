"""Fixtures for the ``qat export`` tests: tiny ResNet-10 DetectNet_v2 models (float and QAT,
64x64, 2 classes) saved as .hdf5, real calibration images, a synthetic spec project."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from export_cli_helpers import EXPORT_COMMAND, SIZE, randomize, real_images  # noqa: E402
from synthetic_workflow import make_synthetic_project  # noqa: E402

KEY = "secret"


@pytest.fixture(autouse=True)
def export_command(monkeypatch):
    """Make sure ``qat export`` is registered (until the lead adds it to COMMANDS)."""
    from tao_qat.cli import main

    monkeypatch.setitem(main.COMMANDS, "export", EXPORT_COMMAND)


@pytest.fixture(scope="session")
def images():
    """The 4 real photos at 64x64: float32 [4, 64, 64, 3] in [0, 1]."""
    return real_images()


@pytest.fixture(scope="session")
def models(tmp_path_factory, images):
    """{"float", "qat", "encrypted": .hdf5 paths; "float_model", "qat_model": keras.Model}.

    The QAT model's activation ranges are the max |x| of the float model on the 4 photos
    (``calibrate_ranges``), not TAO's initial 6.0: no value of these images is clipped, so
    TensorRT's [-128, 127] clamp and QAT's [-127, 127] give the same results on them.
    "encrypted" is the float model saved with KEY.
    """
    from tao_qat.common.tensorflow_setup import keras
    from tao_qat.modeling.detectnet import build_detectnet_v2
    from tao_qat.modeling.model_io import save_model
    from tao_qat.quantization import calibrate_ranges, create_qat_model

    folder = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    model = randomize(build_detectnet_v2(10, 2, (SIZE, SIZE, 3)))
    qat = create_qat_model(model)
    calibrate_ranges(qat, [images])
    return {
        "float": save_model(model, folder / "float.hdf5"),
        "qat": save_model(qat, folder / "qat.hdf5"),
        "encrypted": save_model(model, folder / "encrypted.tlt", key=KEY),
        "float_model": model,
        "qat_model": qat,
    }


@pytest.fixture(scope="session")
def project(tmp_path_factory):
    """Synthetic 64x64 KITTI project (classes car, person; batch 4): experiment spec path."""
    root = tmp_path_factory.mktemp("export_project")
    return make_synthetic_project(root, num_train=8, num_val=4, width=SIZE, height=SIZE, epochs=1)
