"""Households, their adults and children, and applications (Anträge)."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Boolean, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kyffikus.models.base import Base, utcnow

if TYPE_CHECKING:
    from kyffikus.models.catalogue import Locality
    from kyffikus.models.passes import Pass
    from kyffikus.models.people import User

APPLICATION_STATUSES = ("draft", "submitted", "approved", "rejected", "withdrawn")


class Household(Base):
    """A family's household: the adults named on the pass, the children, the address."""

    __tablename__ = "household"

    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL for households entered at the counter for a family without e-mail.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL"), unique=True
    )
    street: Mapped[str] = mapped_column(String(200), default="")
    postal_code: Mapped[str] = mapped_column(String(5), default="", index=True)
    locality_id: Mapped[int | None] = mapped_column(ForeignKey("locality.id"), index=True)
    phone: Mapped[str | None] = mapped_column(String(40))
    consent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    user: Mapped[User | None] = relationship(back_populates="household")
    locality: Mapped[Locality | None] = relationship()
    adults: Mapped[list[Adult]] = relationship(
        back_populates="household", cascade="all, delete-orphan", order_by="Adult.position"
    )
    children: Mapped[list[Child]] = relationship(
        back_populates="household", cascade="all, delete-orphan", order_by="Child.birth_date"
    )
    applications: Mapped[list[Application]] = relationship(
        back_populates="household", cascade="all, delete-orphan", order_by="Application.id"
    )
    passes: Mapped[list[Pass]] = relationship(back_populates="household", order_by="Pass.id")


class Adult(Base):
    """An adult of the household who is named on the pass (one or two)."""

    __tablename__ = "adult"
    __table_args__ = (CheckConstraint("position IN (1, 2)", name="position"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(
        ForeignKey("household.id", ondelete="CASCADE"), index=True
    )
    position: Mapped[int] = mapped_column(default=1)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100), index=True)

    household: Mapped[Household] = relationship(back_populates="adults")

    @property
    def full_name(self) -> str:
        """First name and surname."""
        return f"{self.first_name} {self.last_name}"


class Child(Base):
    """A child of the household; counts on the pass until the 18th birthday."""

    __tablename__ = "child"

    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(
        ForeignKey("household.id", ondelete="CASCADE"), index=True
    )
    first_name: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[date]

    household: Mapped[Household] = relationship(back_populates="children")


class Application(Base):
    """An application (Antrag) for a pass: draft, submitted, approved, rejected or withdrawn."""

    __tablename__ = "application"
    __table_args__ = (
        CheckConstraint(
            "status IN ('draft', 'submitted', 'approved', 'rejected', 'withdrawn')", name="status"
        ),
        CheckConstraint("channel IN ('online', 'counter')", name="channel"),
        Index("ix_application_status_submitted", "status", "submitted_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    household_id: Mapped[int] = mapped_column(
        ForeignKey("household.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), default="draft")
    channel: Mapped[str] = mapped_column(String(20), default="online")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    submitted_at: Mapped[datetime | None]
    decided_at: Mapped[datetime | None]
    decided_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    # The eligibility check's outcome at submission: [{"rule": ..., "ok": ..., "message": ...}].
    eligibility: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    eligible: Mapped[bool | None] = mapped_column(Boolean)
    possible_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    # Snapshot of the household at submission, so staff decide on what was submitted.
    snapshot: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    consent_at: Mapped[datetime | None]
    entered_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    household: Mapped[Household] = relationship(back_populates="applications")
    decided_by: Mapped[User | None] = relationship(foreign_keys=[decided_by_id])
