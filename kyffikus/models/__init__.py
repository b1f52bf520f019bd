"""All models, imported here so Alembic and the app see the whole schema."""

from kyffikus.models.audit import AuditEntry, Setting
from kyffikus.models.base import Base, berlin_today, utcnow
from kyffikus.models.catalogue import (
    Category,
    Edition,
    Locality,
    Municipality,
    Offer,
    OutsideLocality,
    PostalCode,
    Provider,
    Venue,
    offer_venue,
)
from kyffikus.models.families import Adult, Application, Child, Household
from kyffikus.models.passes import Pass, PassEvent, Redemption
from kyffikus.models.people import ApiToken, RecoveryCode, User, UserToken
from kyffikus.models.statistics import StatisticsSnapshot

__all__ = [
    "Adult",
    "ApiToken",
    "Application",
    "AuditEntry",
    "Base",
    "Category",
    "Child",
    "Edition",
    "Household",
    "Locality",
    "Municipality",
    "Offer",
    "OutsideLocality",
    "Pass",
    "PassEvent",
    "PostalCode",
    "Provider",
    "RecoveryCode",
    "Redemption",
    "Setting",
    "StatisticsSnapshot",
    "User",
    "UserToken",
    "Venue",
    "berlin_today",
    "offer_venue",
    "utcnow",
]
