"""The calibration core imports and runs with TensorFlow blocked (architecture: TF-free core)."""

import subprocess
import sys

SCRIPT = """
import sys, tempfile, pathlib
sys.modules["tensorflow"] = None  # any "import tensorflow" now raises ImportError
import numpy as np
from tao_qat.export.calibration import HistogramCollector, compute_amax_dict
from tao_qat.export.calibration_cache import write_calibration_cache, write_cal_json
from tao_qat.export.deepstream import write_deepstream_config
from tao_qat.export.tensorfile import TensorFile, write_tensorfile
from tao_qat.postprocessing.settings import ClusteringSettings

collector = HistogramCollector("input_1:0")
collector.collect(np.random.default_rng(0).random((2, 3, 8, 8)))
scales = compute_amax_dict([collector], "entropy")
folder = pathlib.Path(tempfile.mkdtemp())
write_calibration_cache(folder / "cal.bin", scales, "8.6.1")
write_cal_json(folder / "cal.json", scales)
write_deepstream_config(folder, onnx_file=folder / "m.onnx", input_shape=(3, 8, 8),
                        class_names=["a"], clustering=[ClusteringSettings()])
write_tensorfile(folder / "t.h5", [np.zeros((1, 8, 8, 3), np.float32)])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras")
                and sys.modules[m] is not None)
print("loaded:", loaded, sorted(p.name for p in folder.iterdir()))
"""


def test_calibration_modules_run_without_tensorflow():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "loaded: [] ['cal.bin', 'cal.json', 'labels.txt', 'nvinfer_config.txt', 't.h5']"
    )
