"""Users, their one-time tokens and recovery codes, and API tokens of providers."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from kyffikus.models.base import Base, utcnow

if TYPE_CHECKING:
    from kyffikus.models.catalogue import Provider
    from kyffikus.models.families import Household

ROLES = ("family", "provider", "staff", "admin")


class User(Base):
    """Anyone who logs in: a family, a provider's person, staff or an admin."""

    __tablename__ = "user_account"
    __table_args__ = (
        CheckConstraint("role IN ('family', 'provider', 'staff', 'admin')", name="role"),
        CheckConstraint(
            "role <> 'provider' OR provider_id IS NOT NULL", name="provider_has_provider"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20), index=True)
    provider_id: Mapped[int | None] = mapped_column(ForeignKey("provider.id"), index=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    email_confirmed_at: Mapped[datetime | None]
    # Raised on logout, password change and deactivation: every older session is refused.
    session_version: Mapped[int] = mapped_column(default=1)
    locale: Mapped[str | None] = mapped_column(String(5))
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[datetime | None]
    # The time step of the last accepted TOTP code: a code is accepted once only (ASVS 6.5.1).
    totp_last_counter: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]

    provider: Mapped[Provider | None] = relationship(back_populates="users")
    household: Mapped[Household | None] = relationship(back_populates="user")

    # Flask-Login's interface.
    @property
    def is_active(self) -> bool:
        """Deactivated users cannot log in and their sessions end."""
        return self.active

    @property
    def is_authenticated(self) -> bool:
        """A loaded user is authenticated."""
        return True

    @property
    def is_anonymous(self) -> bool:
        """A loaded user is not anonymous."""
        return False

    def get_id(self) -> str:
        """The session's user id, bound to the session version so old sessions die."""
        return f"{self.id}:{self.session_version}"

    @property
    def is_staff(self) -> bool:
        """Staff or admin."""
        return self.role in ("staff", "admin")


class UserToken(Base):
    """A single-use token sent by e-mail (confirm, reset, invite); only its hash is stored."""

    __tablename__ = "user_token"
    __table_args__ = (CheckConstraint("purpose IN ('confirm', 'reset', 'invite')", name="purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    purpose: Mapped[str] = mapped_column(String(20))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class RecoveryCode(Base):
    """A one-time recovery code for two-factor sign-in; only its hash is stored."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    used_at: Mapped[datetime | None]


class ApiToken(Base):
    """A provider's API token for scanner apps and till systems; shown once, stored hashed."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    provider_id: Mapped[int] = mapped_column(ForeignKey("provider.id"), index=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()
