"""``qat demo [-r workdir] [--quick] [--force]``: PTQ vs QAT on the vendored tree tiles."""

import click

from tao_qat.cli.main import verbose_option


@click.command("demo")
@click.option(
    "-r",
    "--results_dir",
    "workdir",
    default="qat_demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Work folder; an existing demo folder is resumed (finished steps skipped).",
)
@click.option(
    "--quick",
    is_flag=True,
    help="Tiny settings (192x192, 1-3 epochs): the same steps in a few minutes.",
)
@click.option("--force", is_flag=True, help="Discard an earlier demo in the folder; start over.")
@verbose_option
def demo(workdir, quick, force):
    """Train, prune, retrain, QAT, export and compare FP32 / PTQ INT8 / QAT INT8 on the aerial
    tree tiles; write report.md and report.html with the tables and pictures."""
    from tao_qat.common.errors import QatError
    from tao_qat.demo.run_demo import DemoOptions, run_demo

    result = run_demo(DemoOptions(workdir=workdir, quick=quick, force=force, echo=click.echo))
    if result.missing:
        raise QatError(
            f"{len(result.missing)} steps could not run (see 'Not run' in "
            f"{result.report_md}): {'; '.join(result.missing)}"
        )
