"""Compatibility entry point: the contact workflow's definitions bundle.

See ``revops.definitions`` for how each kind is parsed and where it comes from.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from models.contact import ContactConfig
from revops.definitions import ActiveBody, build_contact_config
from revops.yamlio import format_validation_error, read_yaml

__all__ = ["format_validation_error", "load_contact_config", "read_yaml"]


def load_contact_config(
    config_dir: Path, active_body: ActiveBody | None = None, **overrides: Any
) -> ContactConfig:
    """The bundle from deployed definitions, falling back to the files in ``config_dir``."""
    return build_contact_config(config_dir, active_body, **overrides)
