"""The ``qat`` click group: lazy command loading and the one-line error policy.

Command modules are imported only when their command runs (or for ``--help``), and they import
TensorFlow only inside the command body, so ``qat --help`` and ``qat validate_spec`` stay fast.
Errors a user can cause (``QatError``, missing files, click usage errors) print one line on
stderr and exit non-zero; ``-v/--verbose`` (on the group or the command) adds the traceback.
Log records go to stderr through one handler on the root logger (``setup_logging``): warnings as
the plain message, everything as ``LEVEL logger: message`` with ``-v``.
"""

import importlib
import logging
import os
import sys
import traceback

import click

from tao_qat import __version__
from tao_qat.common.errors import QatError

# command name -> "module:attribute" of its click.Command, in the order `qat --help` lists them.
COMMANDS = {
    "validate_spec": "tao_qat.cli.validate_spec:validate_spec",
    "dataset_convert": "tao_qat.cli.dataset_convert:dataset_convert",
    "train": "tao_qat.cli.train:train",
    "evaluate": "tao_qat.cli.evaluate:evaluate",
    "inference": "tao_qat.cli.inference:inference",
    "prune": "tao_qat.cli.prune:prune",
    "export": "tao_qat.cli.export:export",
    "calibration_tensorfile": "tao_qat.cli.calibration_tensorfile:calibration_tensorfile",
    "convert": "tao_qat.cli.convert:convert",
    "preview": "tao_qat.cli.preview:preview",
    "demo": "tao_qat.cli.demo:demo",
}

_state = {"verbose": False}

PLAIN_FORMAT = "%(message)s"
VERBOSE_FORMAT = "%(levelname)s %(name)s: %(message)s"


class _StderrHandler(logging.StreamHandler):
    """Writes to the current ``sys.stderr`` (looked up per record, so a replaced stderr, e.g.
    pytest's capture, receives the messages)."""

    def __init__(self):
        logging.Handler.__init__(self)

    @property
    def stream(self):
        return sys.stderr


def setup_logging(verbose=False):
    """Give the root logger one stderr handler of ours (installed once).

    Default: warnings and errors as the plain message, one line each. ``verbose``: everything
    from DEBUG up, as ``LEVEL logger: message``. With a handler on the root logger, libraries
    that call ``logging.basicConfig()`` on the fly (absl does when it first logs) change
    nothing, so our warnings never turn into ``WARNING:name:message``.
    """
    root = logging.getLogger()
    handler = next((h for h in root.handlers if isinstance(h, _StderrHandler)), None)
    if handler is None:
        handler = _StderrHandler()
        root.addHandler(handler)
    handler.setFormatter(logging.Formatter(VERBOSE_FORMAT if verbose else PLAIN_FORMAT))
    handler.setLevel(logging.DEBUG if verbose else logging.WARNING)
    if verbose:
        _state.setdefault("root_level", root.level)
        root.setLevel(logging.DEBUG)
    elif "root_level" in _state:  # an earlier run in this process was verbose
        root.setLevel(_state.pop("root_level"))
    return handler


def set_verbose(ctx, param, value):
    """click callback for ``-v/--verbose``: remember that tracebacks may be shown."""
    if value:
        _state["verbose"] = True
        os.environ["TAO_QAT_VERBOSE"] = "1"
        setup_logging(verbose=True)
    return value


verbose_option = click.option(
    "-v",
    "--verbose",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=set_verbose,
    help="Show debug logging, TensorFlow's C++ log and full tracebacks.",
)


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use from ``COMMANDS``."""

    def list_commands(self, ctx):
        return list(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="qat")
@verbose_option
def cli():
    """TAO DetectNet_v2 workflow with quantization-aware training.

    Every command reads TAO-compatible protobuf text spec files.
    """


def _command_name(argv):
    for arg in argv:
        if arg in COMMANDS:
            return arg
    return None


def main(argv=None):
    """Console-script entry point: run ``qat`` and turn errors into one line + exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    _state["verbose"] = False  # per run (tests run several in one process); -v sets it again
    setup_logging(verbose=False)
    prefix = "qat" + (f" {_command_name(argv)}" if _command_name(argv) else "")
    try:
        code = cli.main(args=argv, prog_name="qat", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.ClickException as exc:
        _report(prefix, exc.format_message(), exc.exit_code)
        return exc.exit_code
    except click.exceptions.Abort:
        _report(prefix, "aborted", 130)
        return 130
    except KeyboardInterrupt:
        _report(prefix, "interrupted", 130)
        return 130
    except QatError as exc:
        _report(prefix, str(exc), exc.exit_code)
        return exc.exit_code
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        _report(prefix, f"{where}{exc.strerror or exc}", 1)
        return 1
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, not a traceback
        _report(prefix, f"internal error: {type(exc).__name__}: {exc} (rerun with --verbose)", 1)
        return 1
    return code if isinstance(code, int) else 0


def _report(prefix, message, exit_code):
    if _state["verbose"] and sys.exc_info()[0] is not None:
        traceback.print_exc()
    message = " ".join(str(message).split("\n")) if not _state["verbose"] else message
    click.echo(f"{prefix}: error: {message}", err=True)


if __name__ == "__main__":
    sys.exit(main())
