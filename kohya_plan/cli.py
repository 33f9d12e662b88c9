"""Command-line interface (the only module that imports click)."""

import click


@click.group()
def cli() -> None:
    """kohya-plan."""


def main() -> None:
    cli()
