"""The catalogue: editions, categories, providers, venues, offers, and the district's localities."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Column,
    ForeignKey,
    Index,
    Numeric,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kyffikus.models.base import Base, utcnow

if TYPE_CHECKING:
    from kyffikus.models.people import User

DISCOUNT_KINDS = ("percent", "amount", "children_free", "family_price", "other")
REDEMPTION_LIMITS = ("unlimited", "per_day", "per_edition")


class Edition(Base):
    """An edition of the pass: offers belong to one; passes are valid until its end."""

    __tablename__ = "edition"
    __table_args__ = (CheckConstraint("valid_until >= valid_from", name="dates_ordered"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[int] = mapped_column(unique=True)
    name: Mapped[str] = mapped_column(String(120))
    valid_from: Mapped[date]
    valid_until: Mapped[date]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    offers: Mapped[list[Offer]] = relationship(back_populates="edition")

    def covers(self, day: date) -> bool:
        """Whether the edition is valid on the given day."""
        return self.valid_from <= day <= self.valid_until


class Category(Base):
    """A category of offers (Sport, Freizeit, Erlebnis, Kultur, Bildung)."""

    __tablename__ = "category"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name_de: Mapped[str] = mapped_column(String(80))
    name_en: Mapped[str] = mapped_column(String(80))
    position: Mapped[int] = mapped_column(default=0)

    offers: Mapped[list[Offer]] = relationship(back_populates="category")

    def name(self, locale: str) -> str:
        """The category's name in the given language."""
        return self.name_en if locale == "en" else self.name_de


class Provider(Base):
    """A provider (Anbieter): museum, pool, club, cinema; has venues, offers and users."""

    __tablename__ = "provider"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(80), unique=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    description: Mapped[str] = mapped_column(Text, default="")
    contact_name: Mapped[str | None] = mapped_column(String(200))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(60))
    website: Mapped[str | None] = mapped_column(String(300))
    published: Mapped[bool] = mapped_column(Boolean, default=True)
    is_sample: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    venues: Mapped[list[Venue]] = relationship(
        back_populates="provider", cascade="all, delete-orphan", order_by="Venue.id"
    )
    offers: Mapped[list[Offer]] = relationship(back_populates="provider", order_by="Offer.title")
    users: Mapped[list[User]] = relationship(back_populates="provider")


class Venue(Base):
    """A place where a provider's offers can be used."""

    __tablename__ = "venue"
    __table_args__ = (UniqueConstraint("provider_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(60))
    name: Mapped[str] = mapped_column(String(200))
    street: Mapped[str | None] = mapped_column(String(200))
    postal_code: Mapped[str | None] = mapped_column(String(5))
    town: Mapped[str] = mapped_column(String(120), index=True)
    latitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    longitude: Mapped[Decimal | None] = mapped_column(Numeric(9, 6))
    accessibility: Mapped[str | None] = mapped_column(Text)

    provider: Mapped[Provider] = relationship(back_populates="venues")
    offers: Mapped[list[Offer]] = relationship(secondary="offer_venue", back_populates="venues")


offer_venue = Table(
    "offer_venue",
    Base.metadata,
    Column("offer_id", ForeignKey("offer.id", ondelete="CASCADE"), primary_key=True),
    Column("venue_id", ForeignKey("venue.id", ondelete="CASCADE"), primary_key=True),
)


class Offer(Base):
    """A discount offer (Angebot) of a provider in an edition."""

    __tablename__ = "offer"
    __table_args__ = (
        UniqueConstraint("edition_id", "key"),
        CheckConstraint(
            "discount_kind IN ('percent', 'amount', 'children_free', 'family_price', 'other')",
            name="discount_kind",
        ),
        CheckConstraint(
            "redemption_limit IN ('unlimited', 'per_day', 'per_edition')", name="redemption_limit"
        ),
        CheckConstraint(
            "(min_age IS NULL OR (min_age >= 0 AND min_age <= 17)) AND "
            "(max_age IS NULL OR (max_age >= 0 AND max_age <= 17)) AND "
            "(min_age IS NULL OR max_age IS NULL OR min_age <= max_age)",
            name="age_range",
        ),
        CheckConstraint("discount_value IS NULL OR discount_value >= 0", name="discount_value"),
        Index("ix_offer_provider_edition", "provider_id", "edition_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(80))
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"), index=True)
    edition_id: Mapped[int] = mapped_column(ForeignKey("edition.id"), index=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("category.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    discount_kind: Mapped[str] = mapped_column(String(20))
    discount_value: Mapped[Decimal | None] = mapped_column(Numeric(8, 2))
    conditions: Mapped[str | None] = mapped_column(Text)
    min_age: Mapped[int | None]
    max_age: Mapped[int | None]
    redemption_limit: Mapped[str] = mapped_column(String(20), default="unlimited")
    published: Mapped[bool] = mapped_column(Boolean, default=True)
    copied_from_id: Mapped[int | None] = mapped_column(ForeignKey("offer.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    provider: Mapped[Provider] = relationship(back_populates="offers")
    edition: Mapped[Edition] = relationship(back_populates="offers")
    category: Mapped[Category] = relationship(back_populates="offers")
    venues: Mapped[list[Venue]] = relationship(secondary="offer_venue", back_populates="offers")

    @property
    def children_free(self) -> bool:
        """Whether children get in free (the directory's "free for children" filter)."""
        return self.discount_kind == "children_free"


class Municipality(Base):
    """A municipality (Gemeinde) of the district; mergers change the list, so it is data."""

    __tablename__ = "municipality"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    localities: Mapped[list[Locality]] = relationship(
        back_populates="municipality", order_by="Locality.name"
    )


class PostalCode(Base):
    """A postal code of the district; some are shared with a neighbouring district."""

    __tablename__ = "postal_code"

    code: Mapped[str] = mapped_column(String(5), primary_key=True)
    shared: Mapped[bool] = mapped_column(Boolean, default=False)
    note_de: Mapped[str | None] = mapped_column(Text)
    note_en: Mapped[str | None] = mapped_column(Text)


class Locality(Base):
    """A locality (Ort, Ortsteil) with its postal code: the address must match one of these."""

    __tablename__ = "locality"
    __table_args__ = (UniqueConstraint("postal_code", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    postal_code: Mapped[str] = mapped_column(ForeignKey("postal_code.code"), index=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    municipality: Mapped[Municipality] = relationship(back_populates="localities")


class OutsideLocality(Base):
    """A locality outside the district that shares one of its postal codes (refused, explained)."""

    __tablename__ = "outside_locality"
    __table_args__ = (UniqueConstraint("postal_code", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    postal_code: Mapped[str] = mapped_column(String(5))
    district: Mapped[str] = mapped_column(String(120))
