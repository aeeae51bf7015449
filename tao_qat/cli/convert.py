"""``qat convert model.onnx -e model.engine [-c cal.bin] [-t fp32|fp16|int8] [-b 8] [-m 16]
[-p profile] [-w 2G] [-s] [--use_dla] [-u core]`` builds a TensorRT engine on the target device
(tao-converter's role and flag letters, for ONNX input: -d/-o/-i come from the model);
``qat convert --trt_version V cal.bin`` rewrites a calibration cache header for the target's
TensorRT without building (TAO §8, int8_calibration.md §2.3)."""

import re

import click

from tao_qat.cli.main import verbose_option

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text):
    """Bytes from "2147483648", "2048M" or "2G" (binary units)."""
    match = re.fullmatch(r"\s*(\d+)\s*([KMG]?)(?:i?B)?\s*", str(text), re.IGNORECASE)
    if not match:
        raise ValueError(f"{text!r}: expected bytes, or a number with K, M or G")
    return int(match[1]) * _UNITS[match[2].upper()]


def _size_callback(ctx, param, value):
    try:
        return parse_size(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("convert")
@click.argument("input_path", type=click.Path(exists=True, dir_okay=False))
@click.option("-e", "--engine_file", default=None, help="TensorRT engine to write.")
@click.option(
    "-c",
    "--cal_cache_file",
    default=None,
    help="Calibration cache: read for implicit INT8 (TensorRT <= 10) or written by calibration.",
)
@click.option(
    "-t",
    "--data_type",
    type=click.Choice(["fp32", "fp16", "int8"]),
    default="fp32",
    show_default=True,
    help="Engine precision (a Q/DQ ONNX takes int8).",
)
@click.option(
    "-b",
    "--batch_size",
    type=int,
    default=8,
    show_default=True,
    help="Optimization-profile opt batch and calibration batch size.",
)
@click.option(
    "-m",
    "--max_batch_size",
    type=int,
    default=16,
    show_default=True,
    help="Optimization-profile max batch (min is 1).",
)
@click.option(
    "-p",
    "--profile",
    default=None,
    help="Explicit profile <input>,<min>,<opt>,<max> as NxCxHxW (overrides -b/-m).",
)
@click.option(
    "-w",
    "--max_workspace_size",
    "workspace_bytes",
    default="2G",
    show_default=True,
    callback=_size_callback,
    help="Builder workspace: bytes, or with K/M/G.",
)
@click.option(
    "-s",
    "--strict_type_constraints",
    "strict_types",
    is_flag=True,
    help="No FP16 fallback for INT8; pin layer precision (TensorRT <= 10).",
)
@click.option("--use_dla", is_flag=True, help="Build for a DLA core with GPU fallback.")
@click.option("-u", "--dla_core", type=int, default=None, help="DLA core (implies --use_dla).")
@click.option("-k", "--key", default=None, help="Passphrase of an encrypted ONNX model.")
@click.option(
    "--cal_data_file",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Calibration tensor file (HDF5) when there is no cache: TensorRT calibrates.",
)
@click.option(
    "--batches", type=int, default=-1, show_default=True, help="Calibration batches (-1 = all)."
)
@click.option(
    "--trt_version",
    default=None,
    help="Target TensorRT: alone, rewrites the cache header; with -e, must be the installed one.",
)
@click.option("--dry_run", is_flag=True, help="Print the build plan without TensorRT.")
@click.option("--force", is_flag=True, help="Overwrite an existing engine.")
@verbose_option
def convert(input_path, dla_core, use_dla, **flags):
    """Build a TensorRT engine from an exported ONNX model, or retarget a calibration cache."""
    from tao_qat.export.tensorrt_engine import ConvertOptions, run_convert

    run_convert(
        ConvertOptions(
            input_path=input_path,
            use_dla=use_dla or dla_core is not None,
            dla_core=dla_core or 0,
            echo=click.echo,
            **flags,
        )
    )
