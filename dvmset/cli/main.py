"""The `dvmset` application: creates the command line and registers every command, by name, from the
module of the user it serves (curate: data engineers; publish; label: annotators; train, rhythm,
generate, evaluate: modelers; models: everyone). `main` is the console script's entry point."""

from __future__ import annotations

import sys

import typer

from dvmset.cli import curate, evaluate, generate, label, models, publish, rhythm, train
from dvmset.cli.common import err, exit_code_for
from dvmset.errors import DvmsetError

app = typer.Typer(
    help="Build the DVMSet video-music dataset.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

COMMANDS = (  # (name, function), in the order `dvmset --help` lists them
    ("init", curate.init),
    ("discover", curate.discover),
    ("download", curate.download),
    ("probe", curate.probe),
    ("separate", curate.separate),
    ("clip", curate.clip_command),
    ("build", curate.build),
    ("status", curate.status),
    ("orphans", curate.orphans),
    ("demo", curate.demo),
    ("publish", publish.publish),
    ("release", publish.release),
    ("rebuild", publish.rebuild),
    ("label", label.label),
    ("train", train.train),
    ("train-rhythm", rhythm.train_rhythm),
    ("generate", generate.generate),
    ("evaluate", evaluate.evaluate),
)
for name, command in COMMANDS:
    app.command(name=name)(command)
app.add_typer(publish.manifests_app, name="manifests")
app.add_typer(models.models_app, name="models")


def main() -> None:
    """Entry point: run the app; a DvmsetError nobody caught still exits cleanly with its message."""
    try:
        app()
    except DvmsetError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(int(exit_code_for(exc)))
