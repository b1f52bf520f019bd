"""Snapshots of statistics that take long to count (state scale), shared by every worker."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from kyffikus.models.base import Base, utcnow


class StatisticsSnapshot(Base):
    """The database's counts for one part of the statistics (before small groups are hidden).

    Written only when counting took long; read for a few minutes instead of counting again.
    """

    __tablename__ = "statistics_snapshot"

    # What was counted: "usage:2026", "applications:2026", "reach:2026-01-01:2026-12-31:year", ...
    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)
    seconds: Mapped[float] = mapped_column(default=0.0)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
