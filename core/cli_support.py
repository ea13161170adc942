"""What every fleetscope command needs, whichever package defines it: the settings, or a clear exit."""

from __future__ import annotations

import sys

import click

from core.errors import ConfigError
from core.settings import Settings, load_settings


def settings_or_exit() -> Settings:
    """The settings, or exit 2 with the message naming the variable to fix."""
    try:
        return load_settings()
    except ConfigError as exc:
        click.echo(f"fleetscope: {exc}", err=True)
        sys.exit(2)
