"""The spec package and ``qat validate_spec`` work with TensorFlow made unimportable."""

import subprocess
import sys

from spec_testing import QAT_SPEC

SCRIPT = f"""
import sys
sys.modules["tensorflow"] = None  # any `import tensorflow` now raises ImportError
import tao_qat.spec.loader, tao_qat.spec.validation, tao_qat.spec.defaults
import tao_qat.spec.generate
from tao_qat.cli.main import main
code = main(["validate_spec", "-e", {str(QAT_SPEC)!r}])
heavy = sorted(m for m in ("tensorflow", "tf_keras", "keras", "numpy") if sys.modules.get(m))
print("code", code, "heavy", heavy)
"""


def test_spec_package_imports_without_tensorflow():
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "valid experiment spec" in result.stdout
    assert result.stdout.strip().endswith("code 0 heavy []")
