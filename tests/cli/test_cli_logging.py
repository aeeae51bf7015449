"""Log lines of ``qat`` on stderr: plain one-line warnings, even after a library has logged
through absl (which calls ``logging.basicConfig()`` when the root logger has no handler and
used to turn our warnings into ``WARNING:tao_qat.x:message``); ``-v`` shows level and logger.

The tests run ``qat dataset_convert`` in-process on a KITTI folder with a label file that has
no image: ``tao_qat.data.sources`` logs one warning for it. pytest's own log-capture handlers
are taken off the root logger during a test (``bare_root_logger``): the root logger of a real
``qat`` process has none before ``main`` runs.
"""

import contextlib
import logging
import shutil

import pytest
from absl import logging as absl_logging

from tao_qat.cli.main import PLAIN_FORMAT, VERBOSE_FORMAT, setup_logging
from tao_qat.data.synthetic import write_synthetic_kitti

ORPHAN_WARNING = "{}: 1 label file(s) without a .png image are ignored (e.g. orphan.txt)"


@contextlib.contextmanager
def bare_root_logger():
    """The root logger with no handler and level WARNING inside the block (then restored).

    Used inside the test body: pytest adds its capture handlers after the fixtures are set up.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    root.handlers[:] = []
    root.setLevel(logging.WARNING)
    try:
        yield root
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


@pytest.fixture
def convert_args(tmp_path):
    """(arguments of a ``qat dataset_convert`` run logging one warning, that warning)."""
    kitti = tmp_path / "kitti"
    write_synthetic_kitti(kitti, 4, image_size=(32, 32), box_size=(6, 12))
    shutil.copy(kitti / "label_2" / "000001.txt", kitti / "label_2" / "orphan.txt")
    spec = tmp_path / "convert.txt"
    spec.write_text(
        'kitti_config { root_directory_path: "kitti" image_dir_name: "image_2" '
        'label_dir_name: "label_2" image_extension: ".png" partition_mode: "random" '
        "num_partitions: 2 val_split: 25 num_shards: 1 }\n"
    )
    args = ["dataset_convert", "-d", spec, "-o", tmp_path / "records" / "kitti", "--force"]
    return args, ORPHAN_WARNING.format(kitti / "label_2")


def _warning_lines(err):
    return [line for line in err.splitlines() if "without a .png image" in line]


def test_a_warning_is_one_plain_line_even_after_absl_logged(convert_args, run_qat):
    convert_args, warning = convert_args
    with bare_root_logger() as root:
        code, _, err = run_qat(*convert_args)
        assert code == 0, err
        assert _warning_lines(err) == [warning]
        # A library logs through absl while the process runs (TensorFlow and tf_keras do
        # during training): absl's logging.basicConfig() finds our handler, changes nothing.
        absl_logging.warning("a library warning")
        assert len(root.handlers) == 1
        code, _, err = run_qat(*convert_args)
        assert len(root.handlers) == 1  # installed once, not once per run
    assert code == 0, err
    assert _warning_lines(err) == [warning]
    assert "WARNING:" not in err


def test_verbose_shows_level_and_logger_then_the_next_run_is_plain_again(
    convert_args, run_qat, monkeypatch
):
    monkeypatch.delenv("TAO_QAT_VERBOSE", raising=False)  # ``-v`` sets it: removed afterwards
    convert_args, warning = convert_args
    with bare_root_logger() as root:
        code, _, verbose_err = run_qat("-v", *convert_args)
        verbose_level = root.level
        code_2, _, err = run_qat(*convert_args)
        level = root.level
    assert code == 0 and code_2 == 0, verbose_err + err
    assert _warning_lines(verbose_err) == [f"WARNING tao_qat.data.sources: {warning}"]
    assert verbose_level == logging.DEBUG
    assert _warning_lines(err) == [warning]
    assert level == logging.WARNING  # restored after the verbose run


def test_setup_logging_levels_and_formats():
    with bare_root_logger() as root:
        handler = setup_logging()
        assert root.handlers == [handler]
        assert (handler.level, handler.formatter._fmt) == (logging.WARNING, PLAIN_FORMAT)
        assert setup_logging(verbose=True) is handler
        assert (handler.level, handler.formatter._fmt) == (logging.DEBUG, VERBOSE_FORMAT)
        assert root.level == logging.DEBUG
        setup_logging()
        assert root.handlers == [handler]
        assert (handler.level, root.level) == (logging.WARNING, logging.WARNING)
