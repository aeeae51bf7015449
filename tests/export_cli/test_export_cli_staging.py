"""All-or-nothing output (``export.staged_outputs``) and calibration batch re-cutting
(``export.calibration_data.rebatch``): TF-free units of ``qat export``."""

import numpy as np
import pytest

from tao_qat.common.errors import DataError, OutputExistsError, UsageError
from tao_qat.export.calibration_data import choose_source, rebatch
from tao_qat.export.staged_outputs import StagedOutputs


def test_commit_moves_every_file_into_place(tmp_path):
    other = tmp_path / "elsewhere"
    finals = [tmp_path / "a.onnx", tmp_path / "a.cal.bin", other / "deep" / "b.json"]
    with StagedOutputs() as staged:
        staged.check(finals)
        for number, final in enumerate(finals):
            path = staged.stage(final)
            assert path.parent.name.startswith(".qat_export_") and path.name == final.name
            path.write_text(str(number))
        assert not any(final.exists() for final in finals)  # nothing final before commit
        assert staged.commit() == finals
    assert [final.read_text() for final in finals] == ["0", "1", "2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.cal.bin", "a.onnx", "elsewhere"]
    assert [p.name for p in (other / "deep").iterdir()] == ["b.json"]


def test_an_exception_discards_everything(tmp_path):
    with pytest.raises(RuntimeError, match="boom"), StagedOutputs() as staged:
        staged.stage(tmp_path / "a.onnx").write_text("partial")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_existing_outputs_and_duplicates_are_refused(tmp_path):
    (tmp_path / "a.onnx").write_text("old")
    with pytest.raises(OutputExistsError):
        StagedOutputs().check([tmp_path / "a.onnx", None])
    StagedOutputs(force=True).check([tmp_path / "a.onnx"])
    with pytest.raises(UsageError, match="named for two different outputs"):
        StagedOutputs().check([tmp_path / "b.onnx", tmp_path / "x" / ".." / "b.onnx"])
    # A file appearing while the export ran is not overwritten at commit either.
    with StagedOutputs() as staged:
        staged.stage(tmp_path / "c.onnx").write_text("new")
        (tmp_path / "c.onnx").write_text("theirs")
        with pytest.raises(OutputExistsError):
            staged.commit()
    assert (tmp_path / "c.onnx").read_text() == "theirs"


def test_relative_paths_seen_from_staging(tmp_path):
    # nvinfer_config.txt stores paths relative to its folder: computed from the staging folder
    # they must come out as they will be after the commit.
    import os

    with StagedOutputs() as staged:
        for final in (tmp_path / "m.onnx", tmp_path / "sub" / "c.bin", tmp_path.parent / "x"):
            seen = staged.as_seen_from_staging(tmp_path, final)
            relative = os.path.relpath(seen.resolve(), staged.staging_folder(tmp_path))
            assert relative == os.path.relpath(final, tmp_path)


def test_rebatch_recuts_to_a_fixed_size():
    batches = [np.full((n, 1, 2, 2), i, np.float32) for i, n in enumerate((3, 2, 4))]
    out = list(rebatch(batches, 4))
    # 9 images -> 4 + 4, 1 dropped; order kept: [0,0,0,1], [1,2,2,2].
    assert [b[:, 0, 0, 0].tolist() for b in out] == [[0, 0, 0, 1], [1, 2, 2, 2]]
    with pytest.raises(DataError, match="3 images, fewer than the static batch size 4"):
        list(rebatch(batches[:1], 4))


def test_calibration_source_precedence(tmp_path):
    tensors = tmp_path / "cal.h5"
    tensors.write_bytes(b"")
    assert choose_source(tensors, tmp_path, "spec.txt").kind == "tensorfile"
    images = choose_source(tmp_path / "new.h5", tmp_path, "spec.txt")
    assert (images.kind, images.save_tensorfile) == ("images", tmp_path / "new.h5")
    assert choose_source(None, None, "spec.txt").kind == "spec"
    assert choose_source() is None
