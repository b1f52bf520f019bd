#!/usr/bin/env python
"""Generate a benchmark data set on PostgreSQL, at district or state scale, in minutes.

    .venv/bin/python bench/generate.py --scale district      # 8,000 families, 200,000 redemptions
    .venv/bin/python bench/generate.py --scale state         # 250,000 families, 5,000,000 redemptions

It (re)creates the database kyffikus_bench_<scale> on the server in --server (default
postgresql://postgres@127.0.0.1), builds the schema with the real migrations, loads the real
catalogue and localities with the real loader, then writes households, adults, children,
applications, passes (with realistic statuses) and their events with COPY, and redemptions with one
INSERT ... SELECT over generate_series. Secondary indexes on redemption are dropped during the bulk
insert and rebuilt after it, then everything is analysed.

Accounts for the load generator (all share BENCH_PASSWORD): the bench provider's cashier
(PROVIDER_EMAIL), a staff member (STAFF_EMAIL) and every family (familie<N>@bench.example). The bench
provider has an API token whose raw value is BENCH_API_TOKEN (only its hash is stored).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
from psycopg.types.json import Json  # noqa: E402
from sqlalchemy import JSON, Table  # noqa: E402

from kyffikus.models.base import berlin_today  # noqa: E402

DEFAULT_SERVER = os.environ.get("KYFFIKUS_BENCH_SERVER", "postgresql://postgres@127.0.0.1")
BENCH_PASSWORD = "Kyffikus-Bench-Passwort-2026"  # noqa: S105 - a bench-only account, never production
# Matches the API's token shape (kyf_ + URL-safe characters); known so the load generator can send it.
BENCH_API_TOKEN = "kyf_bench0000000000000000000000000000000000000000"  # noqa: S105 - bench-only
PROVIDER_EMAIL = "kasse@bench.example"
STAFF_EMAIL = "verwaltung@bench.example"
FAMILY_EMAIL = "familie{n}@bench.example"
MARKER_KEY = "bench.generated"

# The district's day (Europe/Berlin), as the app's checks and statistics count days.
TODAY = berlin_today()
EDITION_START = date(TODAY.year, 1, 1)
SEED = 20261130


@dataclass(frozen=True)
class Scale:
    """How big a data set is."""

    name: str
    families: int
    offers: int
    redemptions: int


SCALES = {
    "district": Scale("district", families=8_000, offers=47, redemptions=200_000),
    "state": Scale("state", families=250_000, offers=103, redemptions=5_000_000),
}

FIRST_NAMES = [
    "Anna",
    "Maria",
    "Julia",
    "Laura",
    "Lena",
    "Sarah",
    "Katharina",
    "Lisa",
    "Johanna",
    "Sophie",
    "Nicole",
    "Sandra",
    "Stefanie",
    "Claudia",
    "Sabine",
    "Andrea",
    "Susanne",
    "Melanie",
    "Jana",
    "Franziska",
    "Thomas",
    "Michael",
    "Andreas",
    "Stefan",
    "Christian",
    "Markus",
    "Daniel",
    "Sebastian",
    "Tobias",
    "Alexander",
    "Jan",
    "Martin",
    "Matthias",
    "Frank",
    "Jens",
    "Sven",
    "Uwe",
    "Dirk",
    "René",
    "Mario",
]
LAST_NAMES = [
    "Müller",
    "Schmidt",
    "Schneider",
    "Fischer",
    "Weber",
    "Meyer",
    "Wagner",
    "Becker",
    "Schulz",
    "Hoffmann",
    "Schäfer",
    "Koch",
    "Bauer",
    "Richter",
    "Klein",
    "Wolf",
    "Schröder",
    "Neumann",
    "Schwarz",
    "Zimmermann",
    "Braun",
    "Krüger",
    "Hofmann",
    "Hartmann",
    "Lange",
    "Schmitt",
    "Werner",
    "Schmitz",
    "Krause",
    "Meier",
    "Lehmann",
    "Schmid",
    "Schulze",
    "Maier",
    "Köhler",
    "Herrmann",
    "König",
    "Walter",
    "Mayer",
    "Huber",
    "Kaiser",
    "Fuchs",
    "Peters",
    "Lang",
    "Scholz",
    "Möller",
    "Weiß",
    "Jung",
    "Hahn",
    "Schubert",
    "Vogel",
    "Friedrich",
    "Keller",
]
CHILD_NAMES = [
    "Mia",
    "Emma",
    "Hannah",
    "Sofia",
    "Emilia",
    "Lina",
    "Marie",
    "Noah",
    "Leon",
    "Paul",
    "Ben",
    "Finn",
    "Elias",
    "Felix",
    "Luis",
    "Anton",
]
STREETS = (
    "Hauptstraße",
    "Bahnhofstraße",
    "Schulstraße",
    "Gartenstraße",
    "Lindenstraße",
    "Bergstraße",
    "Kirchstraße",
    "Am Markt",
    "Wiesenweg",
    "Feldstraße",
    "Mühlenweg",
    "Rosenweg",
    "Ringstraße",
)


def log(message: str) -> None:
    """Print a progress line at once."""
    print(message, flush=True)


def database_name(scale: str) -> str:
    """The bench database of a scale."""
    return f"kyffikus_bench_{scale}"


def database_url(scale: str, server: str = DEFAULT_SERVER) -> str:
    """A psycopg URL of the scale's database."""
    return f"{server.rstrip('/')}/{database_name(scale)}"


def sqlalchemy_url(url: str) -> str:
    """The same URL for SQLAlchemy with psycopg 3."""
    return "postgresql+psycopg://" + url.split("://", 1)[1]


def generated_marker(scale: str, server: str = DEFAULT_SERVER) -> dict[str, Any] | None:
    """What generate() wrote into the database, or None if it never finished there."""
    try:
        with psycopg.connect(database_url(scale, server), connect_timeout=3) as conn:
            row = conn.execute("SELECT value FROM setting WHERE key = %s", (MARKER_KEY,)).fetchone()
    except psycopg.Error:
        return None
    if row is None:
        return None
    value = row[0]
    return json.loads(value) if isinstance(value, str) else value


def recreate_database(scale: str, server: str) -> None:
    """Drop and create the scale's database."""
    name = database_name(scale)
    with psycopg.connect(f"{server.rstrip('/')}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def make_app(url: str) -> Any:
    """The real app on the bench database (for migrations, the loader and password hashing)."""
    from kyffikus import create_app

    return create_app(
        {
            "SQLALCHEMY_DATABASE_URI": sqlalchemy_url(url),
            "SECRET_KEY": "bench-generator-only",
            "ENV": "development",
            "MAIL_BACKEND": "console",
        }
    )


# ---- COPY with the model's defaults ---------------------------------------------------------


class Copier:
    """COPY rows into a table; NOT NULL columns the caller leaves out get the model's default."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        from kyffikus.models import Base

        self.conn = conn
        self.tables = Base.metadata.tables

    def _plan(
        self, table: Table, columns: Sequence[str]
    ) -> tuple[list[str], list[Any], list[bool]]:
        extra_names: list[str] = []
        extra_values: list[Any] = []
        for column in table.columns:
            if column.name in columns or column.nullable or column.primary_key:
                continue
            if column.server_default is not None:
                continue
            default = column.default
            if default is None:
                raise SystemExit(
                    f"{table.name}.{column.name} is NOT NULL and has no default: add it to the generator"
                )
            value = default.arg(None) if callable(default.arg) else default.arg
            extra_names.append(column.name)
            extra_values.append(value)
        names = list(columns) + extra_names
        is_json = [isinstance(table.columns[n].type, JSON) for n in names]
        return names, extra_values, is_json

    def copy(self, table_name: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
        """COPY the rows; returns how many were written."""
        table = self.tables[table_name]
        names, extra, is_json = self._plan(table, columns)
        count = 0
        quoted = ", ".join(f'"{n}"' for n in names)
        with (
            self.conn.cursor() as cur,
            cur.copy(f'COPY "{table_name}" ({quoted}) FROM STDIN') as copy,
        ):
            for row in rows:
                values = list(row) + extra
                copy.write_row(
                    [
                        Json(v) if j and v is not None else v
                        for v, j in zip(values, is_json, strict=True)
                    ]
                )
                count += 1
        return count


def reset_sequences(conn: psycopg.Connection[Any]) -> None:
    """Move every id sequence past the ids written explicitly."""
    from kyffikus.models import Base

    for table in Base.metadata.sorted_tables:
        pk = list(table.primary_key.columns)
        if len(pk) != 1 or pk[0].name != "id":
            continue
        seq = conn.execute(
            "SELECT pg_get_serial_sequence(%s, 'id')", (f'"{table.name}"',)
        ).fetchone()
        if seq and seq[0]:
            conn.execute(
                f'SELECT setval(%s, COALESCE((SELECT max(id) FROM "{table.name}"), 0) + 1, false)',
                (seq[0],),
            )


def next_id(conn: psycopg.Connection[Any], table: str) -> int:
    """The first free id of a table."""
    row = conn.execute(f'SELECT COALESCE(max(id), 0) + 1 FROM "{table}"').fetchone()
    return int(row[0]) if row else 1


# ---- the catalogue, providers and staff ------------------------------------------------------


def load_catalogue_and_accounts(app: Any, scale: Scale) -> dict[str, Any]:
    """Migrations, the real catalogue and localities, extra offers, provider users, staff, API token."""
    from flask_migrate import upgrade
    from sqlalchemy import func, select

    from kyffikus.extensions import db
    from kyffikus.models import ApiToken, Category, Edition, Offer, Provider, User, Venue
    from kyffikus.services.apitokens import hash_token
    from kyffikus.services.catalogue_load import load_catalogue
    from kyffikus.services.passwords import hash_password

    with app.app_context():
        upgrade()
        load_catalogue()
        db.session.flush()
        edition = db.session.scalars(select(Edition).order_by(Edition.valid_from)).first()
        if edition is None:
            raise SystemExit("the catalogue has no edition")
        categories = list(db.session.scalars(select(Category).order_by(Category.position)))
        offers = list(db.session.scalars(select(Offer).order_by(Offer.id)))
        # The state has more providers: add invented ones until the scale's number of offers.
        n = 0
        while len(offers) < scale.offers:
            n += 1
            provider = Provider(
                slug=f"bench-anbieter-{n}",
                name=f"Freizeitanbieter Thüringen {n}",
                description="Ein erfundener Anbieter für den Lasttest.",
            )
            provider.venues.append(
                Venue(
                    key="main",
                    name=provider.name,
                    street="Markt 1",
                    postal_code="99084",
                    town="Erfurt",
                )
            )
            db.session.add(provider)
            for k in range(2):
                if len(offers) >= scale.offers:
                    break
                offer = Offer(
                    key=f"bench-{n}-{k}",
                    provider=provider,
                    edition=edition,
                    category=categories[(n + k) % len(categories)],
                    title=f"Familienermäßigung {n}.{k + 1}",
                    description="Ermäßigter Eintritt für Familien mit dem Familienpass.",
                    discount_kind="percent",
                    discount_value=20,
                    published=True,
                )
                offer.venues = list(provider.venues)
                db.session.add(offer)
                offers.append(offer)
        db.session.flush()
        # A realistic mix of limits: a third each once per day, once per edition, unlimited.
        for offer in offers:
            offer.redemption_limit = ("per_day", "per_edition", "unlimited")[offer.id % 3]
            offer.published = True
        # The bench provider: the catalogue provider with the most offers (ties by slug).
        counts = db.session.execute(
            select(Offer.provider_id, func.count())
            .join(Provider, Provider.id == Offer.provider_id)
            .where(Provider.slug.not_like("bench-%"))
            .group_by(Offer.provider_id, Provider.slug)
            .order_by(func.count().desc(), Provider.slug)
        ).first()
        bench_provider = db.session.get(Provider, counts[0]) if counts else None
        if bench_provider is None:
            raise SystemExit("the catalogue has no provider with offers")
        password_hash = hash_password(BENCH_PASSWORD)
        now = datetime.now(UTC)
        cashier = User(
            email=PROVIDER_EMAIL,
            role="provider",
            provider=bench_provider,
            password_hash=password_hash,
            email_confirmed_at=now,
        )
        staff = User(
            email=STAFF_EMAIL, role="staff", password_hash=password_hash, email_confirmed_at=now
        )
        db.session.add_all([cashier, staff])
        for provider in db.session.scalars(select(Provider).order_by(Provider.id)):
            db.session.add(
                User(
                    email=f"{provider.slug}@bench.example",
                    role="provider",
                    provider=provider,
                    password_hash=password_hash,
                    email_confirmed_at=now,
                )
            )
        db.session.flush()
        db.session.add(
            ApiToken(
                provider_id=bench_provider.id,
                user_id=cashier.id,
                name="Kasse (Lasttest)",
                token_hash=hash_token(BENCH_API_TOKEN),
                prefix=BENCH_API_TOKEN[:12],
            )
        )
        db.session.commit()
        return {
            "edition_id": edition.id,
            "edition_until": edition.valid_until,
            "bench_provider_id": bench_provider.id,
            "bench_provider": bench_provider.slug,
            "staff_id": staff.id,
            "password_hash": password_hash,
        }


# ---- families --------------------------------------------------------------------------------


def _birth_date(rng: random.Random) -> date:
    return TODAY - timedelta(days=rng.randint(60, 17 * 365 + 300))


def write_families(
    conn: psycopg.Connection[Any], scale: Scale, ctx: dict[str, Any]
) -> dict[str, int]:
    """Users, households, adults, children, applications, passes and pass events, with COPY."""
    from kyffikus.services import passnumber

    rng = random.Random(SEED)
    copier = Copier(conn)
    localities = [
        r[0] for r in conn.execute("SELECT id FROM locality WHERE active ORDER BY id").fetchall()
    ]
    postal = dict(conn.execute("SELECT id, postal_code FROM locality").fetchall())
    first_user = next_id(conn, "user_account")
    first_pass = next_id(conn, "pass")
    staff_id = ctx["staff_id"]
    edition_id = ctx["edition_id"]
    until: date = ctx["edition_until"]

    users: list[tuple[Any, ...]] = []
    households: list[tuple[Any, ...]] = []
    adults: list[tuple[Any, ...]] = []
    children: list[tuple[Any, ...]] = []
    applications: list[tuple[Any, ...]] = []
    passes: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    numbers: set[str] = set()
    pass_id = first_pass

    def new_number() -> str:
        while True:
            number = passnumber.generate()
            if number not in numbers:
                numbers.add(number)
                return number

    for h in range(1, scale.families + 1):
        online = rng.random() < 0.85
        user_id = None
        created = datetime.combine(EDITION_START, datetime.min.time(), UTC) + timedelta(
            minutes=rng.randint(0, max(1, (TODAY - EDITION_START).days) * 1440)
        )
        if online:
            user_id = first_user + len(users)
            users.append(
                (
                    user_id,
                    FAMILY_EMAIL.format(n=h),
                    ctx["password_hash"],
                    "family",
                    True,
                    created,
                    1,
                    created,
                )
            )
        locality = localities[rng.randrange(len(localities))]
        households.append(
            (
                h,
                user_id,
                f"{STREETS[h % len(STREETS)]} {1 + h % 97}",
                postal[locality],
                locality,
                created,
                created,
                created,
            )
        )
        last = LAST_NAMES[rng.randrange(len(LAST_NAMES))]
        names = [(rng.choice(FIRST_NAMES), last)]
        if rng.random() < 0.7:
            names.append((rng.choice(FIRST_NAMES), rng.choice((last, rng.choice(LAST_NAMES)))))
        for position, (first, surname) in enumerate(names, start=1):
            adults.append((h, position, first, surname))
        n_children = rng.choices((1, 2, 3, 4, 5), weights=(35, 38, 18, 7, 2))[0]
        births = sorted((_birth_date(rng) for _ in range(n_children)), reverse=True)
        for born in births:
            children.append((h, rng.choice(CHILD_NAMES), born))
        roll = rng.random()
        status = (
            "approved"
            if roll < 0.92
            else "submitted"
            if roll < 0.96
            else "rejected"
            if roll < 0.98
            else "draft"
        )
        submitted = created if status != "draft" else None
        decided = (
            created + timedelta(days=rng.randint(0, 6))
            if status in ("approved", "rejected")
            else None
        )
        applications.append(
            (
                h,
                h,
                status,
                "online" if online else "counter",
                created,
                submitted,
                decided,
                staff_id if decided else None,
                "Nicht im Landkreis gemeldet." if status == "rejected" else None,
                True if submitted else None,
                False,
                created if submitted else None,
            )
        )
        if status != "approved":
            continue
        holders = [{"first_name": f, "last_name": s} for f, s in names]
        dates = [b.isoformat() for b in births]
        issued = decided or created
        roll = rng.random()
        kind = (
            "active"
            if roll < 0.86
            else "expired"
            if roll < 0.91
            else "revoked"
            if roll < 0.94
            else "replaced"
        )
        valid_until = until if kind != "expired" else EDITION_START + timedelta(days=180)
        changed = issued + timedelta(days=rng.randint(1, 60)) if kind != "active" else None
        old_id = pass_id
        passes.append(
            (
                old_id,
                new_number(),
                secrets.token_urlsafe(24),
                h,
                h,
                None,
                edition_id,
                kind,
                EDITION_START,
                valid_until,
                holders,
                dates,
                issued,
                staff_id,
                changed,
                "Verloren gemeldet." if kind in ("revoked", "replaced") else None,
            )
        )
        events.append((old_id, "issued", issued, staff_id))
        pass_id += 1
        if kind in ("revoked", "expired"):
            events.append((old_id, kind, changed, staff_id))
        if kind == "replaced":
            events.append((old_id, "replaced", changed, staff_id))
            passes.append(
                (
                    pass_id,
                    new_number(),
                    secrets.token_urlsafe(24),
                    h,
                    None,
                    old_id,
                    edition_id,
                    "active",
                    EDITION_START,
                    until,
                    holders,
                    dates,
                    changed,
                    staff_id,
                    None,
                    None,
                )
            )
            events.append((pass_id, "issued", changed, staff_id))
            pass_id += 1

    written = {
        "user_account": copier.copy(
            "user_account",
            (
                "id",
                "email",
                "password_hash",
                "role",
                "active",
                "email_confirmed_at",
                "session_version",
                "created_at",
            ),
            users,
        ),
        "household": copier.copy(
            "household",
            (
                "id",
                "user_id",
                "street",
                "postal_code",
                "locality_id",
                "consent_at",
                "created_at",
                "updated_at",
            ),
            households,
        ),
        "adult": copier.copy(
            "adult", ("household_id", "position", "first_name", "last_name"), adults
        ),
        "child": copier.copy("child", ("household_id", "first_name", "birth_date"), children),
        "application": copier.copy(
            "application",
            (
                "id",
                "household_id",
                "status",
                "channel",
                "created_at",
                "submitted_at",
                "decided_at",
                "decided_by_id",
                "rejection_reason",
                "eligible",
                "possible_duplicate",
                "consent_at",
            ),
            applications,
        ),
        "pass": copier.copy(
            "pass",
            (
                "id",
                "number",
                "token",
                "household_id",
                "application_id",
                "replaces_id",
                "edition_id",
                "status",
                "valid_from",
                "valid_until",
                "holders",
                "children_birth_dates",
                "issued_at",
                "issued_by_id",
                "status_changed_at",
                "status_reason",
            ),
            passes,
        ),
        "pass_event": copier.copy("pass_event", ("pass_id", "kind", "at", "by_id"), events),
    }
    return written


# ---- redemptions -----------------------------------------------------------------------------


def _secondary_indexes(
    conn: psycopg.Connection[Any],
) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """Redemption's indexes and unique constraints that the bulk insert does not need."""
    constraints = conn.execute(
        """
        SELECT conname, pg_get_constraintdef(c.oid) FROM pg_constraint c
        WHERE conrelid = 'redemption'::regclass AND contype = 'u'
          AND pg_get_constraintdef(c.oid) NOT LIKE 'UNIQUE (pass_id, offer_id, limit_key)%'
        """
    ).fetchall()
    indexes = conn.execute(
        """
        SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x
        JOIN pg_class i ON i.oid = x.indexrelid
        WHERE x.indrelid = 'redemption'::regclass AND NOT x.indisprimary
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid)
        """
    ).fetchall()
    return [(r[0], r[1]) for r in constraints], [(r[0], r[1]) for r in indexes]


def write_redemptions(conn: psycopg.Connection[Any], scale: Scale, ctx: dict[str, Any]) -> int:
    """Redemptions with INSERT ... SELECT over generate_series, popular offers used more often."""
    constraints, indexes = _secondary_indexes(conn)
    for name, _definition in constraints:
        conn.execute(f'ALTER TABLE redemption DROP CONSTRAINT "{name}"')
    for name, _definition in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    # The data is consistent by construction: skip the foreign-key triggers for the bulk insert.
    conn.execute("SET session_replication_role = replica")
    conn.execute("""
        CREATE TEMP TABLE bench_pass AS
        SELECT row_number() OVER (ORDER BY id)::int AS i, id FROM pass WHERE status IN ('active', 'expired', 'replaced')
    """)
    # The bench provider's offers first: they are the most popular, so its checks find history.
    conn.execute(
        """
        CREATE TEMP TABLE bench_offer AS
        SELECT row_number() OVER (ORDER BY (o.provider_id = %(p)s) DESC, o.id)::int AS i,
               o.id, o.provider_id, o.redemption_limit AS lim,
               (SELECT min(ov.venue_id) FROM offer_venue ov WHERE ov.offer_id = o.id) AS venue_id,
               (SELECT min(u.id) FROM user_account u WHERE u.provider_id = o.provider_id) AS user_id
        FROM offer o
        """,
        {"p": ctx["bench_provider_id"]},
    )
    conn.execute("CREATE INDEX ON bench_pass (i)")
    conn.execute("CREATE INDEX ON bench_offer (i)")
    n_pass = conn.execute("SELECT count(*) FROM bench_pass").fetchone()[0]  # type: ignore[index]
    n_offer = conn.execute("SELECT count(*) FROM bench_offer").fetchone()[0]  # type: ignore[index]
    days = max(1, (TODAY - EDITION_START).days + 1)
    conn.execute("SELECT setseed(0.42)")
    target = scale.redemptions
    total = 0
    rounds = 0
    while total < target and rounds < 5:
        want = target - total
        conn.execute(
            """
            WITH r AS MATERIALIZED (
                SELECT g,
                       (1 + floor(random() * %(np)s))::int AS pi,
                       (1 + floor(power(random(), 1.3) * %(no)s))::int AS oi,
                       (%(start)s::date + floor(random() * %(days)s)::int) AS d,
                       random() AS t, random() AS a, random() AS c, random() AS u
                FROM generate_series(1, %(n)s) AS g
            )
            INSERT INTO redemption (pass_id, offer_id, provider_id, venue_id, adults, children, redeemed_at,
                                    redeemed_on, limit_key, idempotency_key, by_id, undone_at)
            SELECT CASE WHEN r.u > 0.985 THEN NULL ELSE bp.id END,
                   bo.id, bo.provider_id, bo.venue_id,
                   CASE WHEN r.a < 0.55 THEN 2 ELSE 1 END,
                   (r.c * 4)::int,
                   ((r.d + time '09:00' + r.t * interval '9 hours') AT TIME ZONE 'Europe/Berlin'),
                   r.d,
                   CASE WHEN r.u < 0.01 THEN NULL
                        WHEN bo.lim = 'per_day' THEN to_char(r.d, 'YYYY-MM-DD')
                        WHEN bo.lim = 'per_edition' THEN 'edition' END,
                   CASE WHEN r.t < 0.3 THEN 'bench-' || %(round)s || '-' || r.g END,
                   bo.user_id,
                   CASE WHEN r.u < 0.01 THEN ((r.d + time '18:05') AT TIME ZONE 'Europe/Berlin') END
            FROM r
            JOIN bench_pass bp ON bp.i = r.pi
            JOIN bench_offer bo ON bo.i = r.oi
            ON CONFLICT (pass_id, offer_id, limit_key) DO NOTHING
            """,
            {
                "np": n_pass,
                "no": n_offer,
                "start": EDITION_START,
                "days": days,
                "n": want,
                "round": rounds,
            },
        )
        total = conn.execute("SELECT count(*) FROM redemption").fetchone()[0]  # type: ignore[index]
        rounds += 1
    conn.execute("SET session_replication_role = origin")
    conn.execute("SET maintenance_work_mem = '512MB'")
    conn.execute("SET max_parallel_maintenance_workers = 2")
    for _name, definition in indexes:
        conn.execute(definition)
    for name, definition in constraints:
        conn.execute(f'ALTER TABLE redemption ADD CONSTRAINT "{name}" {definition}')
    return int(total)


# ---- main ------------------------------------------------------------------------------------


def generate(scale_name: str, server: str = DEFAULT_SERVER) -> dict[str, Any]:
    """Build the scale's database from nothing; returns counts and timings."""
    scale = SCALES[scale_name]
    url = database_url(scale_name, server)
    timings: dict[str, float] = {}
    started = time.monotonic()

    def step(name: str, since: float) -> float:
        now = time.monotonic()
        timings[name] = now - since
        log(f"  {name:<28} {timings[name]:7.1f} s")
        return now

    log(f"Generating the {scale_name} data set in {database_name(scale_name)} ...")
    t = time.monotonic()
    recreate_database(scale_name, server)
    app = make_app(url)
    ctx = load_catalogue_and_accounts(app, scale)
    t = step("schema, catalogue, accounts", t)
    with psycopg.connect(url) as conn:
        written = write_families(conn, scale, ctx)
        conn.commit()
        t = step("families and passes (COPY)", t)
        written["redemption"] = write_redemptions(conn, scale, ctx)
        conn.commit()
        t = step("redemptions (generate_series)", t)
        reset_sequences(conn)
        conn.commit()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE)")
        t = step("vacuum analyze", t)
        total = time.monotonic() - started
        marker = {
            "scale": scale_name,
            "generated_on": TODAY.isoformat(),
            "seconds": round(total, 1),
            "counts": written,
            "bench_provider": ctx["bench_provider"],
            "schema": schema_fingerprint(),
        }
        conn.execute(
            "INSERT INTO setting (key, value, updated_at) VALUES (%s, %s, now())",
            (MARKER_KEY, Json(marker)),
        )
    with app.app_context():
        from kyffikus.extensions import db

        db.engine.dispose()
    log("  " + ", ".join(f"{k}: {v:,}" for k, v in written.items()))
    log(f"Generated the {scale_name} data set in {total:.1f} s.")
    return marker


def schema_fingerprint() -> str:
    """A digest of the migrations: it changes whenever the schema is regenerated."""
    import hashlib

    sha = hashlib.sha256()
    for path in sorted((REPO / "migrations" / "versions").glob("*.py")):
        sha.update(path.read_bytes())
    return sha.hexdigest()[:16]


def schema_gaps(url: str) -> tuple[list[str], list[str]]:
    """Tables, and columns of existing tables, that the models have and the database lacks."""
    from kyffikus.models import Base

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public'"
        ).fetchall()
    present: dict[str, set[str]] = {}
    for table, column in rows:
        present.setdefault(table, set()).add(column)
    missing_tables = [t.name for t in Base.metadata.sorted_tables if t.name not in present]
    missing_columns = [
        f"{t.name}.{c.name}"
        for t in Base.metadata.sorted_tables
        if t.name in present
        for c in t.columns
        if c.name not in present[t.name]
    ]
    return missing_tables, missing_columns


def missing_indexes(url: str) -> list[Any]:
    """The models' indexes (by name) that the database lacks."""
    from kyffikus.models import Base

    with psycopg.connect(url) as conn:
        present = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes").fetchall()}
    return [
        index
        for table in Base.metadata.sorted_tables
        for index in sorted(table.indexes, key=lambda i: str(i.name))
        if index.name not in present
    ]


def catch_up_schema(scale_name: str, server: str, marker: dict[str, Any]) -> bool:
    """Bring an older data set up to the current models if only tables or indexes were added;
    else False (regenerate)."""
    url = database_url(scale_name, server)
    missing_tables, missing_columns = schema_gaps(url)
    if missing_columns:
        log(
            f"The {scale_name} data set lacks columns ({', '.join(missing_columns[:5])}): regenerating."
        )
        return False
    indexes = missing_indexes(url)
    if missing_tables or indexes:
        from sqlalchemy import create_engine

        from kyffikus.models import Base

        # New tables start empty in a fresh database too, so creating them is the same as migrating.
        engine = create_engine(sqlalchemy_url(url))
        Base.metadata.create_all(engine, tables=[Base.metadata.tables[t] for t in missing_tables])
        for index in indexes:
            if index.table is not None and index.table.name not in missing_tables:
                started = time.monotonic()
                index.create(engine, checkfirst=True)
                log(f"Built the new index {index.name} ({time.monotonic() - started:.1f} s).")
        engine.dispose()
        if missing_tables:
            log(f"Added the new tables {', '.join(missing_tables)} to the {scale_name} data set.")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")  # index-only scans need the visibility map
    marker["schema"] = schema_fingerprint()
    with psycopg.connect(url) as conn:
        conn.execute("UPDATE setting SET value = %s WHERE key = %s", (Json(marker), MARKER_KEY))
    return True


def ensure(
    scale_name: str, server: str = DEFAULT_SERVER, *, regenerate: bool = False
) -> dict[str, Any]:
    """Generate the scale's data set unless one generated today for the current schema is there."""
    marker = generated_marker(scale_name, server)
    fresh = bool(marker) and not regenerate and marker.get("generated_on") == TODAY.isoformat()
    # Caught up even when the fingerprint matches: an index added to the models leaves the
    # migration's tables and columns as they were.
    if fresh and catch_up_schema(scale_name, server, marker):
        log(f"Using the {scale_name} data set generated today ({marker['seconds']} s to generate).")
        return marker
    return generate(scale_name, server)


def main(argv: list[str] | None = None) -> int:
    """Command line: which scale(s), which server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--scale", choices=("district", "state", "both"), default="district")
    parser.add_argument(
        "--server", default=DEFAULT_SERVER, help="PostgreSQL server URL (no database name)"
    )
    args = parser.parse_args(argv)
    scales = ("district", "state") if args.scale == "both" else (args.scale,)
    for name in scales:
        generate(name, args.server)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
