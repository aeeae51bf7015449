"""Regenerate the ``*_pb2.py`` modules from ``tao_qat/spec/proto/*.proto`` with grpcio-tools.

Usage: ``python -m tao_qat.spec.generate [--out DIR]``. Without ``--out`` the modules are
written next to the .proto files (the committed copies); with it they go under
``DIR/tao_qat/spec/proto/`` (used by the drift test). Needs the ``grpcio-tools`` package
(test extra); the runtime only needs ``protobuf``.
"""

import argparse
import sys
from pathlib import Path

PROTO_DIR = Path(__file__).resolve().parent / "proto"
# Root that the ``import "tao_qat/spec/proto/x.proto"`` paths are relative to.
SOURCE_ROOT = PROTO_DIR.parent.parent.parent


def proto_files():
    """Sorted list of the schema's .proto files as paths relative to ``SOURCE_ROOT``."""
    return sorted(str(p.relative_to(SOURCE_ROOT)) for p in PROTO_DIR.glob("*.proto"))


def generate(out_dir=None):
    """Run protoc on every .proto; write ``*_pb2.py`` under ``out_dir`` (default: in place).

    Returns the list of generated module paths. Raises RuntimeError if protoc fails and
    ImportError if grpcio-tools is not installed.
    """
    import grpc_tools
    from grpc_tools import protoc

    out_dir = Path(out_dir) if out_dir is not None else SOURCE_ROOT
    out_dir.mkdir(parents=True, exist_ok=True)
    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    files = proto_files()
    args = [
        "grpc_tools.protoc",
        f"-I{SOURCE_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        *files,
    ]
    code = protoc.main(args)
    if code != 0:
        raise RuntimeError(f"protoc failed with exit code {code} on {len(files)} files")
    return [out_dir / f.replace(".proto", "_pb2.py") for f in files]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", help="output root (default: next to the .proto files)")
    args = parser.parse_args(argv)
    written = generate(args.out)
    print(f"generated {len(written)} modules")
    return 0


if __name__ == "__main__":
    sys.exit(main())
