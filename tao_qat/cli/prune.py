"""``qat prune -m model.hdf5 -o pruned.hdf5 [-n max|L2] [-eq ...] [-pg 8] [-pth 0.1] [-nf 16]
[-el layer ...]`` (TAO reference §7)."""

import click

from tao_qat.cli.main import verbose_option

EXCLUDED_FLAGS = ("-el", "--excluded_layers")


def expand_list_option(args, flags=EXCLUDED_FLAGS):
    """Rewrite TAO's ``-el a b c`` (argparse nargs='*') as ``-el a -el b -el c`` for click.

    Every word after the flag that does not start with ``-`` belongs to the list; a flag with
    no word after it stands for an empty list and is dropped. ``--excluded_layers=a`` stays.
    """
    out, index = [], 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg not in flags:
            out.append(arg)
            continue
        while index < len(args) and not args[index].startswith("-"):
            out += [arg, args[index]]
            index += 1
    return out


class ListOptionCommand(click.Command):
    """click.Command that accepts TAO's space-separated ``-el/--excluded_layers`` list."""

    def parse_args(self, ctx, args):
        return super().parse_args(ctx, expand_list_option(list(args)))


@click.command("prune", cls=ListOptionCommand)
@click.option(
    "-m",
    "--model",
    required=True,
    type=click.Path(exists=True, dir_okay=False),
    help="Model to prune (.hdf5).",
)
@click.option(
    "-o",
    "--output_file",
    required=True,
    help="Pruned model (.hdf5 appended if missing); <name>.pruning.json goes next to it.",
)
@click.option(
    "--results_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for a TAO-style status.json with the pruning KPIs.",
)
@click.option(
    "-k",
    "--key",
    default=None,
    help="Passphrase: reads an encrypted model and encrypts the pruned one.",
)
@click.option(
    "-n",
    "--normalizer",
    type=click.Choice(["max", "L2"]),
    default="max",
    show_default=True,
    help="Per-layer normalisation of the filter norms.",
)
@click.option(
    "-eq",
    "--equalization_criterion",
    type=click.Choice(["union", "intersection", "arithmetic_mean", "geometric_mean"]),
    default="union",
    show_default=True,
    help="How layers meeting in an element-wise layer combine their statistics.",
)
@click.option(
    "-pg",
    "--pruning_granularity",
    type=click.IntRange(min=1),
    default=8,
    show_default=True,
    help="Kept filter counts are multiples of this.",
)
@click.option(
    "-pth",
    "--pruning_threshold",
    type=float,
    default=0.1,
    show_default=True,
    help="Filters whose normalised norm is not above this are removed.",
)
@click.option(
    "-nf",
    "--min_num_filters",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Keep at least this many filters per layer.",
)
@click.option(
    "-el",
    "--excluded_layers",
    multiple=True,
    metavar="LAYER ...",
    help="Layers that keep all their filters (space-separated list, as in TAO).",
)
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
@verbose_option
def prune(
    model,
    output_file,
    results_dir,
    key,
    normalizer,
    equalization_criterion,
    pruning_granularity,
    pruning_threshold,
    min_num_filters,
    excluded_layers,
    force,
):
    """Prune the filters of a model by their L2 norm (TAO's min_weight method)."""
    from tao_qat.pruning.run_prune import PruneOptions, run_prune

    run_prune(
        PruneOptions(
            model_path=model,
            output_path=output_file,
            key=key,
            normalizer=normalizer,
            criterion=equalization_criterion,
            granularity=pruning_granularity,
            threshold=pruning_threshold,
            min_num_filters=min_num_filters,
            excluded_layers=tuple(excluded_layers),
            results_dir=results_dir,
            force=force,
            echo=click.echo,
        )
    )
