"""The audit log and the settings staff can change."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from kyffikus.models.base import Base, utcnow


class AuditEntry(Base):
    """Who did what to which object, when; written by services, never edited by the UI."""

    __tablename__ = "audit_entry"
    __table_args__ = (
        Index("ix_audit_entry_object", "object_type", "object_id"),
        Index("ix_audit_entry_actor_at", "actor_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    # Kept even when the user is deleted, so the log still says who it was.
    actor_label: Mapped[str | None] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(60), index=True)
    object_type: Mapped[str] = mapped_column(String(40))
    object_id: Mapped[str | None] = mapped_column(String(40))
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class Setting(Base):
    """A setting staff can change (auto-approval, number of families in the district, ...)."""

    __tablename__ = "setting"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
