"""postprocessing and evaluation import and run with TensorFlow blocked (TF-free core)."""

import subprocess
import sys

SCRIPT = """
import sys
sys.modules["tensorflow"] = None  # any "import tensorflow" now raises ImportError
import numpy as np
import tao_qat.evaluation
import tao_qat.postprocessing
from tao_qat.common.detections import GroundTruth
from tao_qat.evaluation import evaluate_detections, format_table
from tao_qat.postprocessing import ClusteringSettings, postprocess_batch

cov = np.zeros((1, 2, 2, 1), np.float32)
cov[0, 0, 0, 0] = 1.0
dets = postprocess_batch(cov, np.zeros((1, 2, 2, 4)), ClusteringSettings(), stride=16)
result = evaluate_detections(dets, [GroundTruth([[0, 0, 1, 1]], [0])], ["a"], 0.5)
format_table(result)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras")
                and sys.modules[m] is not None)
print("loaded:", loaded, "sklearn:", "sklearn.cluster" in sys.modules)
"""


def test_postprocessing_and_evaluation_run_without_tensorflow():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    # DBSCAN ran (scikit-learn loaded), and nothing from TensorFlow / Keras was imported
    assert done.stdout.strip() == "loaded: [] sklearn: True"
