"""Inputs and results of activities (one model in, one out)."""

from __future__ import annotations

from pydantic import BaseModel

from models.contact import StageEntry

__all__ = ["RecordStagesInput"]


class RecordStagesInput(BaseModel):
    """Stage entries a contact workflow decided, to be recorded in the store."""

    contact_id: str
    entries: list[StageEntry]
