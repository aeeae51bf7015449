"""``qat export -m model.hdf5 [-o model.onnx] [--data_type fp32|fp16|int8] [-e spec] ...``
(TAO reference §8): ONNX, and for INT8 the calibration cache, tensor scales JSON and Q/DQ ONNX
(``--target onnxruntime``: also the CPU INT8 ONNX)."""

import click

from tao_qat.cli.main import verbose_option


@click.command("export")
@click.option(
    "-m",
    "--model",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Keras model to export (.hdf5, float or QAT).",
)
@click.option(
    "-o",
    "--output_file",
    default=None,
    help="ONNX file (.onnx appended if missing); default <results_dir or model "
    "folder>/<model name>.onnx.",
)
@click.option(
    "-k",
    "--key",
    default=None,
    help="Passphrase: reads an encrypted model and encrypts the ONNX files.",
)
@click.option(
    "-e",
    "--experiment_spec",
    "spec",
    default=None,
    type=click.Path(exists=True, dir_okay=False),
    help="Experiment spec: INT8 calibration images (training split, no augmentation) "
    "and the classes / clustering for --gen_ds_config.",
)
@click.option(
    "--data_type",
    type=click.Choice(["fp32", "fp16", "int8"]),
    default="fp32",
    show_default=True,
    help="Target engine precision (the ONNX model stays FP32).",
)
@click.option(
    "--target",
    type=click.Choice(["tensorrt", "onnxruntime"]),
    default="tensorrt",
    show_default=True,
    help="INT8 deployment target. tensorrt: calibration cache, Q/DQ ONNX (and JSON). "
    "onnxruntime: the same plus <output>.cpu_int8.onnx, run by ONNX Runtime on CPUs with "
    "integer kernels (a QAT model also needs -e, --cal_image_dir or --cal_data_file).",
)
@click.option(
    "--cal_cache_file",
    default=None,
    help="TensorRT calibration cache (int8); default <output>.cal.bin next to the ONNX.",
)
@click.option(
    "--cal_json_file",
    default=None,
    help='Also write the tensor scales as {"tensor_scales": {tensor: amax}} (int8).',
)
@click.option(
    "--cal_image_dir",
    default=None,
    type=click.Path(exists=True, file_okay=False),
    help="PTQ calibration images (folder of jpg/png/ppm).",
)
@click.option(
    "--cal_data_file",
    default=None,
    help="PTQ calibration tensor file (HDF5); created from --cal_image_dir if missing.",
)
@click.option(
    "--batches", type=int, default=10, show_default=True, help="Number of calibration batches."
)
@click.option(
    "--batch_size", type=int, default=16, show_default=True, help="Calibration batch size."
)
@click.option(
    "--max_batch_size",
    type=int,
    default=1,
    show_default=True,
    help="Engine / DeepStream maximum batch size.",
)
@click.option("--min_batch_size", type=int, default=1, hidden=True)
@click.option("--opt_batch_size", type=int, default=1, hidden=True)
@click.option("--max_workspace_size", type=int, default=2 << 30, hidden=True)
@click.option("-s", "--strict_type_constraints", is_flag=True, hidden=True)
@click.option(
    "--static_batch_size",
    type=int,
    default=-1,
    show_default=True,
    help="Fixed ONNX batch size; -1 = dynamic.",
)
@click.option(
    "--target_opset",
    type=int,
    default=13,
    show_default=True,
    help="ONNX opset (>= 11; per-channel Q/DQ needs 13).",
)
@click.option(
    "--onnx_route", type=click.Choice(["tf2onnx", "keras2onnx"]), default="tf2onnx", hidden=True
)
@click.option(
    "--force_ptq",
    is_flag=True,
    help="QAT model: ignore its ranges and calibrate on images instead.",
)
@click.option(
    "--gen_ds_config",
    is_flag=True,
    help="Write nvinfer_config.txt and labels.txt next to the ONNX (needs -e).",
)
@click.option(
    "--engine_file", default=None, help="Also build a TensorRT engine (needs TensorRT and a GPU)."
)
@click.option(
    "--trt_version",
    default=None,
    help="TensorRT version in the cache header (default: the installed one, else 8.6.1).",
)
@click.option(
    "--results_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for status.json (and the default output).",
)
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
@verbose_option
def export(
    model,
    output_file,
    key,
    spec,
    data_type,
    target,
    cal_cache_file,
    cal_json_file,
    cal_image_dir,
    cal_data_file,
    batches,
    batch_size,
    max_batch_size,
    min_batch_size,
    opt_batch_size,
    max_workspace_size,
    strict_type_constraints,
    static_batch_size,
    target_opset,
    onnx_route,
    force_ptq,
    gen_ds_config,
    engine_file,
    trt_version,
    results_dir,
    force,
):
    """Export a model to ONNX (and INT8 calibration cache / Q/DQ ONNX / CPU INT8 ONNX /
    DeepStream config)."""
    from tao_qat.export.run_export import ExportOptions, run_export

    if onnx_route != "tf2onnx":
        click.echo("note: --onnx_route keras2onnx is not available; using tf2onnx", err=True)
    run_export(
        ExportOptions(
            model_path=model,
            output_path=output_file,
            key=key,
            spec_path=spec,
            data_type=data_type,
            target=target,
            cal_cache_file=cal_cache_file,
            cal_json_file=cal_json_file,
            cal_image_dir=cal_image_dir,
            cal_data_file=cal_data_file,
            batches=batches,
            batch_size=batch_size,
            max_batch_size=max_batch_size,
            min_batch_size=min_batch_size,
            opt_batch_size=opt_batch_size,
            max_workspace_size=max_workspace_size,
            strict_type_constraints=strict_type_constraints,
            static_batch_size=static_batch_size,
            target_opset=target_opset,
            force_ptq=force_ptq,
            gen_ds_config=gen_ds_config,
            engine_file=engine_file,
            trt_version=trt_version,
            results_dir=results_dir,
            force=force,
            echo=click.echo,
        )
    )
