"""The deployment modules import and plan with TensorFlow blocked (TF-free core)."""

import subprocess
import sys

SCRIPT = """
import sys
sys.modules["tensorflow"] = None  # any "import tensorflow" now raises ImportError
from tao_qat.cli.convert import convert
from tao_qat.export.tensorrt_engine import build_engine, run_convert
from tao_qat.export.tensorrt_plan import plan_build
from tao_qat.inference.tensorrt_predictor import TensorRTPredictor
plan = plan_build("10.3.0", "int8", False, False, True)
loaded = sorted(m for m in sys.modules if m.split(".")[0] in ("tensorflow", "keras", "tf_keras")
                and sys.modules[m] is not None)
print("loaded:", loaded, plan.path, ",".join(plan.builder_flags))
"""


def test_deployment_modules_run_without_tensorflow():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "loaded: [] int8-cache INT8,FP16"
