"""Passes (Familienpass), their history, and redemptions (Einlösungen)."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kyffikus.models.base import Base, utcnow

if TYPE_CHECKING:
    from kyffikus.models.catalogue import Edition, Offer, Provider, Venue
    from kyffikus.models.families import Application, Household
    from kyffikus.models.people import User

PASS_STATUSES = ("active", "expired", "revoked", "replaced")


class Pass(Base):
    """A family pass: a typed number, a secret QR token, the adults named and the children counted."""

    __tablename__ = "pass"
    __table_args__ = (
        CheckConstraint("status IN ('active', 'expired', 'revoked', 'replaced')", name="status"),
        CheckConstraint("valid_until >= valid_from", name="dates_ordered"),
        Index("ix_pass_household_status", "household_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The number typed at a till (10 symbols, the last a check symbol); separate from the token.
    number: Mapped[str] = mapped_column(String(10), unique=True)
    # The QR code's secret: >= 128 bits from `secrets`, URL-safe.
    token: Mapped[str] = mapped_column(String(64), unique=True)
    household_id: Mapped[int | None] = mapped_column(
        ForeignKey("household.id", ondelete="SET NULL"), index=True
    )
    # At most one pass per application: approving twice can never yield two passes.
    application_id: Mapped[int | None] = mapped_column(
        ForeignKey("application.id", ondelete="SET NULL"), unique=True
    )
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("pass.id"), unique=True)
    edition_id: Mapped[int | None] = mapped_column(ForeignKey("edition.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default="active", index=True)
    valid_from: Mapped[date]
    valid_until: Mapped[date]
    # The adults named on the pass: [{"first_name": ..., "last_name": ...}].
    holders: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    # Birth dates of the children counted (ISO strings); never shown, only ages in years.
    children_birth_dates: Mapped[list[str]] = mapped_column(JSON, default=list)
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    issued_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )
    status_changed_at: Mapped[datetime | None]
    status_reason: Mapped[str | None] = mapped_column(Text)

    household: Mapped[Household | None] = relationship(back_populates="passes")
    application: Mapped[Application | None] = relationship()
    edition: Mapped[Edition | None] = relationship()
    replaces: Mapped[Pass | None] = relationship(remote_side=[id], foreign_keys=[replaces_id])
    events: Mapped[list[PassEvent]] = relationship(
        back_populates="pass_", cascade="all, delete-orphan", order_by="PassEvent.at"
    )

    @property
    def grouped_number(self) -> str:
        """The number as printed: 4-4-2 groups."""
        n = self.number
        return f"{n[:4]}-{n[4:8]}-{n[8:]}"

    @property
    def holder_names(self) -> list[str]:
        """The adults' full names."""
        return [f"{h['first_name']} {h['last_name']}" for h in self.holders]


class PassEvent(Base):
    """A step in a pass's history: issued, replaced, revoked, extended, expired."""

    __tablename__ = "pass_event"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('issued', 'replaced', 'revoked', 'extended', 'expired', 'reactivated')",
            name="kind",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    pass_id: Mapped[int] = mapped_column(ForeignKey("pass.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    note: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    pass_: Mapped[Pass] = relationship(back_populates="events")
    by: Mapped[User | None] = relationship()


class Redemption(Base):
    """A discount given at a provider (Einlösung).

    `limit_key` makes the database enforce each offer's limit: the day (per_day), "edition"
    (per_edition) or NULL (unlimited; NULLs never collide). An undone redemption clears it.
    """

    __tablename__ = "redemption"
    __table_args__ = (
        UniqueConstraint("pass_id", "offer_id", "limit_key"),
        UniqueConstraint("provider_id", "idempotency_key"),
        CheckConstraint("adults >= 0 AND adults <= 2", name="adults"),
        CheckConstraint("children >= 0 AND children <= 30", name="children"),
        CheckConstraint("adults + children >= 1", name="someone"),
        Index("ix_redemption_provider_at", "provider_id", "redeemed_at"),
        Index("ix_redemption_offer_at", "offer_id", "redeemed_at"),
        # The check: this provider's live redemptions of the pass, from the index alone on
        # PostgreSQL. Through the unique constraint's (pass_id, ...) prefix it read every
        # redemption of the pass from the table (a family's are spread over a year of pages) and
        # dropped the other providers' ones: at state scale the slow tail of the check.
        Index(
            "ix_redemption_check",
            "pass_id",
            "provider_id",
            postgresql_include=["offer_id", "redeemed_at", "redeemed_on"],
            postgresql_where=text("undone_at IS NULL"),
            sqlite_where=text("undone_at IS NULL"),
        ),
        # The provider's history: monthly totals and counts over a date range from the index
        # alone (no table access on PostgreSQL).
        Index(
            "ix_redemption_provider_on",
            "provider_id",
            "redeemed_on",
            "offer_id",
            postgresql_include=["adults", "children", "undone_at"],
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # NULL once anonymised (account deleted, retention): then it is only a count.
    pass_id: Mapped[int | None] = mapped_column(ForeignKey("pass.id", ondelete="SET NULL"))
    offer_id: Mapped[int] = mapped_column(ForeignKey("offer.id"))
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"))
    venue_id: Mapped[int | None] = mapped_column(ForeignKey("venue.id", ondelete="SET NULL"))
    adults: Mapped[int] = mapped_column(default=1)
    children: Mapped[int] = mapped_column(default=0)
    redeemed_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    redeemed_on: Mapped[date]
    limit_key: Mapped[str | None] = mapped_column(String(20))
    idempotency_key: Mapped[str | None] = mapped_column(String(100))
    by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id", ondelete="SET NULL"))
    undone_at: Mapped[datetime | None]
    undone_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("user_account.id", ondelete="SET NULL")
    )

    pass_: Mapped[Pass | None] = relationship()
    offer: Mapped[Offer] = relationship()
    provider: Mapped[Provider] = relationship()
    venue: Mapped[Venue | None] = relationship()
