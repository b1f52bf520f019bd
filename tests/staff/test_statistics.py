"""Statistics: the database's counts match counts computed here from a generated data set; small
groups are hidden ("<5", and "x" where a total would give them away); CSV exports and the dashboard
show the same; staff only."""

from __future__ import annotations

import csv
import io
import random
import statistics as pystats
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from kyffikus.extensions import db
from kyffikus.models import Application, Category, Redemption
from kyffikus.models.base import berlin_today
from kyffikus.services import statistics
from kyffikus.services.statistics import HIDDEN, LESS_THAN, Cell, protect
from tests.conftest import login_as

# Families with an active pass per municipality: Greußen has 3, so it must be hidden.
FAMILIES = {
    ("99706", "Sondershausen"): ("Sondershausen", 12),
    ("06556", "Artern"): ("Artern", 9),
    ("99713", "Ebeleben"): ("Ebeleben", 6),
    ("99718", "Greußen"): ("Greußen", 3),
}
# Redemptions per offer in the year: 60 in all; one offer has 3 ("<5"), one none.
USES = [20, 15, 12, 10, 3, 0]


@pytest.fixture(autouse=True)
def _request_context(app: Flask) -> Any:
    """Services use gettext, which needs a request (the locale comes from it)."""
    with app.test_request_context():
        yield


@dataclass
class Dataset:
    """What was generated, to count independently of the service."""

    today: date
    year: int
    families: dict[str, int] = field(default_factory=dict)
    children: dict[str, int] = field(default_factory=dict)
    offers: list[Any] = field(default_factory=list)
    redemptions: list[tuple[int, int, int, int, date, int]] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)
    decision_days: list[float] = field(default_factory=list)
    categories: dict[int, str] = field(default_factory=dict)


def _under_18(born: date, on: date) -> bool:
    try:
        eighteenth = born.replace(year=born.year + 18)
    except ValueError:
        eighteenth = date(born.year + 18, 3, 1)
    return on < eighteenth


def _at(day: date, hour: int = 10) -> datetime:
    return datetime(day.year, day.month, day.day, hour, 0, tzinfo=UTC)


def build_dataset(
    make_family: Callable[..., Any],
    make_pass: Callable[..., Any],
    make_edition: Callable[..., Any],
    make_provider: Callable[..., Any],
    make_offer: Callable[..., Any],
    make_user: Callable[..., Any],
    today: date | None = None,
) -> Dataset:
    """30 families with active passes in 4 municipalities, some that must not count, 6 offers,
    60 redemptions in the year (and some that must not count), applications with decisions."""
    rng = random.Random(20260)
    today = today or berlin_today()
    year = today.year
    data = Dataset(today=today, year=year)
    edition = make_edition(valid_from=date(year, 1, 1), valid_until=date(year + 1, 12, 31))
    start, end = date(year, 1, 1), date(year + 1, 12, 31)
    eighteen_today = (
        today.replace(year=today.year - 18)
        if not (today.month == 2 and today.day == 29)
        else date(today.year - 18, 2, 28)
    )

    active_passes = []
    for (postal, locality), (municipality, count) in FAMILIES.items():
        data.families[municipality] = count
        data.children[municipality] = 0
        for i in range(count):
            kids = [
                date(year - rng.randint(1, 16), rng.randint(1, 12), rng.randint(1, 28))
                for _ in range(rng.randint(1, 3))
            ]
            if i == 0:
                kids.append(date(year - 21, 3, 1))  # an adult child: on the pass, not counted
            if i == 1:
                kids.append(eighteen_today)  # 18 today: not counted
                kids.append(eighteen_today + timedelta(days=1))  # 18 tomorrow: counted
            household = make_family(
                adults=[("Anna", f"Stat{municipality[:3]}{i}")]
                + ([("Ben", "Zweit")] if i % 2 else []),
                children=kids,
                postal_code=postal,
                locality=locality,
                with_user=False,
            )
            if municipality == "Ebeleben" and i == 0:
                # A replaced pass and its successor: the family counts once.
                make_pass(
                    household, status="replaced", valid_from=start, valid_until=end, edition=edition
                )
            pass_ = make_pass(
                household, status="active", valid_from=start, valid_until=end, edition=edition
            )
            active_passes.append(pass_)
            data.children[municipality] += sum(1 for k in kids if _under_18(k, today))
    # Passes that are not active today count nowhere.
    for status, valid_until in (
        ("revoked", end),
        ("expired", date(year - 1, 12, 31)),
        ("revoked", end),
    ):
        household = make_family(
            children=[date(year - 5, 1, 1)],
            postal_code="99706",
            locality="Sondershausen",
            with_user=False,
        )
        make_pass(
            household, status=status, valid_from=date(year - 1, 1, 1), valid_until=valid_until
        )

    categories = []
    for i, (slug, name) in enumerate(
        (("stat-sport", "Sport"), ("stat-kultur", "Kultur"), ("stat-bildung", "Bildung"))
    ):
        category = Category(slug=slug, name_de=name, name_en=name, position=i + 1)
        db.session.add(category)
        categories.append(category)
    db.session.flush()
    providers = [make_provider(name=f"Statistikanbieter {c}") for c in "ABC"]
    for i in range(len(USES)):
        offer = make_offer(
            providers[i % 3], edition=edition, limit="unlimited", title=f"Statistikangebot {i + 1}"
        )
        offer.category = categories[i % 3]
        data.offers.append(offer)
        data.categories[offer.id] = categories[i % 3].name_de
    db.session.flush()

    def redeem(pass_: Any, offer: Any, day: date, undone: bool = False) -> None:
        db.session.add(
            Redemption(
                pass_id=pass_.id,
                offer_id=offer.id,
                provider_id=offer.provider_id,
                adults=1,
                children=1,
                redeemed_at=_at(day),
                redeemed_on=day,
                limit_key=None,
                undone_at=_at(day, 11) if undone else None,
            )
        )

    for offer, uses in zip(data.offers, USES, strict=True):
        for _ in range(uses):
            pass_ = rng.choice(active_passes)
            day = date(year, rng.randint(1, 12), rng.randint(1, 28))
            redeem(pass_, offer, day)
            data.redemptions.append(
                (offer.id, offer.provider_id, offer.category_id, pass_.household_id, day, day.month)
            )
    # Not in the year's figures: undone, and last year.
    for _ in range(4):
        redeem(rng.choice(active_passes), data.offers[0], date(year, 5, 5), undone=True)
    for _ in range(5):
        redeem(rng.choice(active_passes), data.offers[1], date(year - 1, 11, 11))

    # Applications begun in the year, with decisions after known numbers of days.
    staff = make_user("staff")
    durations = [0.5, 1.0, 2.0, 3.0, 4.5, 7.0, 10.0, 14.0, 2.25, 30.0]
    households = [p.household for p in active_passes]
    for i, days in enumerate(durations):
        status = "approved" if i < 8 else "rejected"
        submitted = _at(date(year, 2, 1)) + timedelta(days=i)
        db.session.add(
            Application(
                household=households[i],
                status=status,
                submitted_at=submitted,
                created_at=submitted,
                decided_at=submitted + timedelta(days=days),
                decided_by_id=staff.id,
            )
        )
        data.statuses[status] += 1
        data.decision_days.append(days)
    for i, status in enumerate(
        (
            "submitted",
            "submitted",
            "submitted",
            "draft",
            "draft",
            "draft",
            "draft",
            "draft",
            "draft",
        )
    ):
        created = _at(date(year, 3, 1)) + timedelta(days=i)
        db.session.add(
            Application(
                household=households[10 + i],
                status=status,
                created_at=created,
                submitted_at=created if status == "submitted" else None,
            )
        )
        data.statuses[status] += 1
    # Last year's application: not in this year's figures.
    db.session.add(
        Application(
            household=households[-1],
            status="approved",
            submitted_at=_at(date(year - 1, 5, 1)),
            created_at=_at(date(year - 1, 5, 1)),
            decided_at=_at(date(year - 1, 5, 3)),
        )
    )
    db.session.flush()
    return data


@pytest.fixture
def dataset(
    localities: None,
    make_family: Any,
    make_pass: Any,
    make_edition: Any,
    make_provider: Any,
    make_offer: Any,
    make_user: Any,
) -> Dataset:
    """The generated data set (see build_dataset)."""
    return build_dataset(make_family, make_pass, make_edition, make_provider, make_offer, make_user)


def assert_shows(cell: Cell, expected: int) -> None:
    """The cell holds the expected count and shows it unless it must be hidden."""
    assert cell.value == expected
    if 0 < expected < 5:
        assert cell.mark == LESS_THAN
    elif cell.mark is not None:
        assert cell.mark == HIDDEN
        assert expected >= 5


def rows_by_label(table: statistics.Table) -> dict[str, list[Cell]]:
    return {str(row[0].value): row for row in table.rows}


# ---- the figures ---------------------------------------------------------------------------------


def test_reach_today_matches_independent_counts(dataset: Dataset) -> None:
    stats = statistics.reach(dataset.today, dataset.today, current=True)
    figures = {f.key: f.cell for f in stats.figures}
    assert_shows(figures["families"], sum(dataset.families.values()))
    assert_shows(figures["children"], sum(dataset.children.values()))
    assert_shows(figures["passes"], 30)
    rows = rows_by_label(stats.table("gemeinden"))
    for name, families in dataset.families.items():
        assert_shows(rows[name][1], families)
        assert rows[name][2].value == dataset.children[name]
    # Greußen has 3 families: its families are "<5" and its children hidden with them.
    assert rows["Greußen"][1].mark == LESS_THAN
    assert rows["Greußen"][2].hidden
    # ... and a second municipality is hidden so the district total does not give Greußen away.
    hidden_families = [r for r in stats.table("gemeinden").rows if r[1].hidden]
    assert len(hidden_families) >= 2


def test_share_of_district_families_when_configured(dataset: Dataset) -> None:
    from kyffikus.services.settings import set_setting

    set_setting("district_family_count", 600)
    figures = {
        f.key: f.cell for f in statistics.reach(dataset.today, dataset.today, current=True).figures
    }
    assert figures["share"].value == pytest.approx(100 * 30 / 600)
    assert statistics.format_cell(figures["share"]) == "5,0 %"


def test_usage_matches_independent_counts(dataset: Dataset) -> None:
    stats = statistics.usage(dataset.year)
    year_rows = [r for r in dataset.redemptions if r[4].year == dataset.year]
    figures = {f.key: f.cell for f in stats.figures}
    assert_shows(figures["redemptions"], len(year_rows))
    assert_shows(figures["households_using"], len({r[3] for r in year_rows}))

    by_offer = Counter(r[0] for r in year_rows)
    offers = {o.title: o.id for o in dataset.offers}
    for title, row in rows_by_label(stats.table("angebote")).items():
        assert_shows(row[3], by_offer.get(offers[title], 0))
    by_provider = Counter(r[1] for r in year_rows)
    provider_rows = rows_by_label(stats.table("anbieter"))
    for offer in dataset.offers:
        assert_shows(provider_rows[offer.provider.name][2], by_provider[offer.provider_id])
    by_category = Counter(dataset.categories[r[0]] for r in year_rows)
    for name, row in rows_by_label(stats.table("kategorien")).items():
        assert_shows(row[1], by_category[name])
    by_month = Counter(r[5] for r in year_rows)
    months = stats.table("monate").rows
    assert len(months) == 12
    for m, row in enumerate(months, start=1):
        assert_shows(row[1], by_month.get(m, 0))

    most = stats.table("meistgenutzt").rows
    assert most[0][0].value == "Statistikangebot 1"
    assert most[0][2].value == 20
    least = stats.table("wenigsten-genutzt").rows
    assert least[0][0].value == "Statistikangebot 5"
    assert least[0][2].mark == LESS_THAN
    never = [r[0].value for r in stats.table("ungenutzt").rows]
    assert never == ["Statistikangebot 6"]


def test_applications_and_median_match_independent_counts(dataset: Dataset) -> None:
    stats = statistics.applications(dataset.year)
    rows = stats.table("antraege").rows
    labels = {statistics.status_label(s): s for s in statistics.APPLICATION_STATUSES}
    for row in rows:
        assert_shows(row[1], dataset.statuses.get(labels[row[0].value], 0))
    figures = {f.key: f.cell for f in stats.figures}
    assert figures["median_days"].value == pytest.approx(
        pystats.median(dataset.decision_days), abs=0.05
    )
    n, median = statistics.median_days_to_decision(
        date(dataset.year, 1, 1), date(dataset.year, 12, 31)
    )
    assert n == len(dataset.decision_days)
    assert median == pytest.approx(pystats.median(dataset.decision_days), abs=1e-3)


def test_median_with_an_odd_number_of_decisions(
    app: Flask, localities: None, make_family: Any, make_user: Any
) -> None:
    staff = make_user("staff")
    household = make_family(with_user=False)
    for days in (1.0, 8.0, 3.0):
        submitted = datetime(2026, 4, 1, 9, tzinfo=UTC)
        db.session.add(
            Application(
                household=household,
                status="approved",
                submitted_at=submitted,
                decided_at=submitted + timedelta(days=days),
                decided_by_id=staff.id,
            )
        )
    db.session.flush()
    n, median = statistics.median_days_to_decision(date(2026, 1, 1), date(2026, 12, 31))
    assert (n, median) == (3, pytest.approx(3.0, abs=1e-3))
    # Fewer than five decisions: the median is not shown.
    figures = {f.key: f.cell for f in statistics.applications(2026).figures}
    assert figures["median_days"].mark == LESS_THAN


def test_yearly_reach_counts_passes_in_force_during_the_year(dataset: Dataset) -> None:
    stats = statistics.reach(date(dataset.year, 1, 1), date(dataset.year, 12, 31), current=False)
    figures = {f.key: f.cell for f in stats.figures}
    # The 30 active families, plus the two revoked passes (status_changed_at is empty: in force)
    # and the one that expired on 31 December last year is not.
    assert figures["families"].value == 32


# ---- suppression ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        # A lone small cell next to a published total: the smallest other cell goes too.
        ({"a": 3, "b": 10, "c": 7, "t": 20}, {"a": LESS_THAN, "c": HIDDEN}),
        # Two small cells that add up to 2 would give both away (each must be 1).
        ({"a": 1, "b": 1, "c": 9, "d": 30, "t": 41}, {"a": LESS_THAN, "b": LESS_THAN, "c": HIDDEN}),
        # 1 and 4 add up to 5: each could be 1 to 4, nothing is disclosed.
        ({"a": 1, "b": 4, "c": 9, "t": 14}, {"a": LESS_THAN, "b": LESS_THAN}),
        # Nothing small: nothing hidden.
        ({"a": 5, "b": 6, "t": 11}, {}),
        # A small cell and zeros only: the total is the cell, so the total is hidden too.
        ({"a": 3, "b": 0, "t": 3}, {"a": LESS_THAN, "t": LESS_THAN}),
        # Zeros are shown and never picked as a complement.
        ({"a": 2, "b": 0, "c": 8, "t": 10}, {"a": LESS_THAN, "c": HIDDEN}),
    ],
)
def test_protect(values: dict[str, int], expected: dict[str, str]) -> None:
    parts = [k for k in values if k != "t"]
    assert protect(values, sums=[("t", parts)]) == expected


def test_protect_hierarchy_hides_a_provider_sum_that_gives_an_offer_away() -> None:
    # Provider P has offers o1 (3) and o2 (0): P's sum is o1 itself and is hidden as well;
    # then the providers' total needs a complement.
    values = {
        ("o", 1): 3,
        ("o", 2): 0,
        ("o", 3): 9,
        ("o", 4): 12,
        ("p", "P"): 3,
        ("p", "Q"): 21,
        "t": 24,
    }
    marks = protect(
        values,
        sums=[
            ("t", [("o", 1), ("o", 2), ("o", 3), ("o", 4)]),
            ("t", [("p", "P"), ("p", "Q")]),
            (("p", "P"), [("o", 1), ("o", 2)]),
            (("p", "Q"), [("o", 3), ("o", 4)]),
        ],
    )
    assert marks[("o", 1)] == LESS_THAN
    assert marks[("p", "P")] == LESS_THAN
    assert ("p", "Q") in marks or "t" in marks
    assert ("o", 3) in marks  # the offers' total needed a complement


def test_no_hidden_offer_can_be_worked_out_from_the_other_tables(dataset: Dataset) -> None:
    stats = statistics.usage(dataset.year)
    offers = stats.table("angebote")
    hidden = [r for r in offers.rows if r[3].hidden]
    assert hidden, "the data set has a small offer"
    for provider_row in stats.table("anbieter").rows:
        mine = [r for r in offers.rows if r[1].value == provider_row[0].value]
        secret = [r for r in mine if r[3].hidden]
        # A provider's shown sum never leaves exactly one of its offers hidden.
        assert provider_row[2].hidden or len(secret) != 1


# ---- pages and exports ---------------------------------------------------------------------------


def _csv(response: Any) -> list[list[str]]:
    body = response.get_data()
    assert body.startswith("\ufeff".encode())
    return list(csv.reader(io.StringIO(body.decode("utf-8-sig")), delimiter=";"))


def test_csv_export_hides_a_municipality_with_three_families(
    client: FlaskClient, dataset: Dataset, make_user: Any
) -> None:
    login_as(client, make_user("staff"))
    response = client.get(f"/verwaltung/statistik/export/gemeinden.csv?jahr={dataset.year}")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert "attachment" in response.headers["Content-Disposition"]
    rows = _csv(response)
    assert rows[0] == ["Gemeinde", "Familien", "Kinder unter 18"]
    by_name = {r[0]: r for r in rows[1:]}
    assert by_name["Greußen"][1] == "<5"
    assert by_name["Greußen"][2] in ("<5", "x")
    assert by_name["Sondershausen"][1] == "12"
    assert "3" not in by_name["Greußen"]
    # Every figure is a number, "<5" or "x": nothing else leaks.
    for row in rows[1:]:
        for value in row[1:]:
            assert value in ("<5", "x") or value.isdigit()
            assert not value.isdigit() or int(value) == 0 or int(value) >= 5


def test_csv_export_of_offers_hides_small_counts(
    client: FlaskClient, dataset: Dataset, make_user: Any
) -> None:
    login_as(client, make_user("staff"))
    rows = _csv(client.get(f"/verwaltung/statistik/export/angebote.csv?jahr={dataset.year}"))
    by_title = {r[0]: r for r in rows[1:]}
    assert by_title["Statistikangebot 5"][3] == "<5"
    assert by_title["Statistikangebot 6"][3] == "0"
    assert by_title["Statistikangebot 1"][3] == "20"
    assert rows[-1][0] == "Gesamt"
    assert rows[-1][3] == "60"


@pytest.mark.parametrize("key", sorted(statistics.TABLE_SECTIONS))
def test_every_table_exports(
    client: FlaskClient, dataset: Dataset, make_user: Any, key: str
) -> None:
    login_as(client, make_user("admin"))
    rows = _csv(client.get(f"/verwaltung/statistik/export/{key}.csv?jahr={dataset.year}"))
    assert len(rows[0]) >= 2
    # Every count of families, children, applications or redemptions is 0, 5 or more, "<5" or "x"
    # (the number of a provider's offers is catalogue data, not a group of families).
    counted = [i for i, name in enumerate(rows[0]) if name != "Angebote"]
    for row in rows[1:]:
        for i in counted:
            value = row[i]
            assert not (value.isdigit() and 0 < int(value) < 5), (key, row)


def test_dashboard_shows_tables_charts_and_hidden_groups(
    client: FlaskClient, dataset: Dataset, make_user: Any
) -> None:
    login_as(client, make_user("staff"))
    response = client.get("/verwaltung/statistik/")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "<svg" in html
    assert "<title" in html
    assert 'role="img"' in html
    assert "Greußen" in html
    assert "&lt;5" in html
    assert html.count("<table") >= 8
    assert "style=" not in html
    assert response.headers["Cache-Control"] == "no-store"


def test_chart_draws_no_bar_for_a_hidden_value(app: Flask) -> None:
    from kyffikus.services.charts import bar_chart

    with app.test_request_context():
        svg = str(bar_chart("t", "Test", [("Groß", Cell(12)), ("Klein", Cell(3, LESS_THAN))]))
    assert svg.count('class="bar"') == 1
    assert "&lt;5" in svg
    assert ">3<" not in svg


@pytest.mark.parametrize("year", ["abc", "1999", "3000", "2026-01"])
def test_a_bad_year_is_refused_with_a_message(
    client: FlaskClient, app: Flask, make_user: Any, year: str
) -> None:
    login_as(client, make_user("staff"))
    response = client.get(f"/verwaltung/statistik/?jahr={year}")
    assert response.status_code == 400
    assert "Bitte wählen Sie ein Jahr" in response.get_data(as_text=True)


def test_unknown_export_is_404(client: FlaskClient, app: Flask, make_user: Any) -> None:
    login_as(client, make_user("staff"))
    assert client.get("/verwaltung/statistik/export/gibtsnicht.csv").status_code == 404


STAT_URLS = [
    "/verwaltung/statistik/",
    "/verwaltung/statistik/export/gemeinden.csv",
    "/verwaltung/statistik/bericht.pdf",
]


@pytest.mark.parametrize("url", STAT_URLS)
@pytest.mark.parametrize("role", ["family", "provider"])
def test_families_and_providers_are_refused(
    client: FlaskClient, make_user: Any, make_provider: Any, url: str, role: str
) -> None:
    user = make_user(role, provider=make_provider() if role == "provider" else None)
    login_as(client, user)
    assert client.get(url).status_code == 403


@pytest.mark.parametrize("url", STAT_URLS)
def test_anonymous_is_sent_to_login(client: FlaskClient, app: Flask, url: str) -> None:
    response = client.get(url)
    assert response.status_code == 302
    assert "/konto/" in response.headers["Location"]


def test_counts_are_grouped_by_the_database(dataset: Dataset, app: Flask) -> None:
    """The dashboard runs a fixed handful of aggregate queries; no query reads redemption rows."""
    from sqlalchemy import event

    statements: list[str] = []

    def remember(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(" ".join(statement.lower().split()))

    # Counting may take longer than the snapshot threshold on a loaded machine; a snapshot
    # write is not what this test is about, so every count is made afresh here.
    app.config["STATISTICS_SNAPSHOT_AFTER"] = 3600
    bind = db.session.get_bind()
    event.listen(bind, "before_cursor_execute", remember)
    try:
        statistics.dashboard(dataset.year, dataset.today)
    finally:
        event.remove(bind, "before_cursor_execute", remember)
        app.config["STATISTICS_SNAPSHOT_AFTER"] = 3600
    # Three snapshot look-ups and a dozen aggregate queries, whatever the data size.
    assert 0 < len(statements) <= 16
    for statement in statements:
        if "from redemption" in statement:
            assert "count(" in statement or "exists" in statement, statement


# ---- snapshots (state scale) ---------------------------------------------------------------------


def _snapshots() -> int:
    from sqlalchemy import func, select

    from kyffikus.models import StatisticsSnapshot

    return db.session.scalar(select(func.count()).select_from(StatisticsSnapshot)) or 0


def test_fast_counts_are_never_kept(client: FlaskClient, dataset: Dataset, make_user: Any) -> None:
    login_as(client, make_user("staff"))
    html = client.get("/verwaltung/statistik/").get_data(as_text=True)
    assert _snapshots() == 0
    assert "Jetzt neu berechnen" not in html


def test_slow_counts_are_reused_until_staff_count_again(
    app: Flask,
    client: FlaskClient,
    dataset: Dataset,
    make_user: Any,
    make_pass: Any,
    make_family: Any,
    runner: Any,
) -> None:
    # Pretend counting is slow (as at state scale): every count is kept as a snapshot.
    app.config["STATISTICS_SNAPSHOT_AFTER"] = 0
    try:
        login_as(client, make_user("staff"))
        url = f"/verwaltung/statistik/?jahr={dataset.year}"
        first = client.get(url).get_data(as_text=True)
        assert _snapshots() == 3
        assert "Jetzt neu berechnen" in first
        for _ in range(5):
            make_pass(
                make_family(postal_code="99706", locality="Sondershausen", with_user=False),
                valid_from=date(dataset.year, 1, 1),
                valid_until=date(dataset.year + 1, 12, 31),
            )
        db.session.flush()
        # The snapshot is reused: still 30 families.
        figures = {f.key: f.cell for f in statistics.dashboard(dataset.year).figures}
        assert figures["families"].value == 30
        response = client.post(
            f"/verwaltung/statistik/aktualisieren?jahr={dataset.year}",
            data={"csrf_token": _csrf(first)},
        )
        assert response.status_code == 302
        page = client.get(response.headers["Location"]).get_data(as_text=True)
        assert "neu berechnet" in page
        figures = {f.key: f.cell for f in statistics.dashboard(dataset.year).figures}
        assert figures["families"].value == 35
        # Past the maximum age the counts are taken again.
        for _ in range(5):
            make_pass(
                make_family(postal_code="99706", locality="Sondershausen", with_user=False),
                valid_from=date(dataset.year, 1, 1),
                valid_until=date(dataset.year + 1, 12, 31),
            )
        db.session.flush()
        app.config["STATISTICS_SNAPSHOT_MAX_AGE"] = 0
        assert {f.key: f.cell for f in statistics.dashboard(dataset.year).figures}[
            "families"
        ].value == 40
        # The command for cron counts again too.
        result = runner.invoke(args=["statistics", "refresh", "--year", str(dataset.year)])
        assert result.exit_code == 0, result.output
        assert "neu gezählt" in result.output
    finally:
        app.config["STATISTICS_SNAPSHOT_AFTER"] = 3600
        app.config.pop("STATISTICS_SNAPSHOT_MAX_AGE", None)


def _csrf(html: str) -> str:
    import re

    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match
    return match.group(1)


def test_refresh_is_staff_only(client: FlaskClient, app: Flask, make_user: Any) -> None:
    assert client.post("/verwaltung/statistik/aktualisieren").status_code in (302, 400)
    login_as(client, make_user("family"))
    app.config["WTF_CSRF_ENABLED"] = False
    try:
        assert client.post("/verwaltung/statistik/aktualisieren").status_code == 403
    finally:
        app.config["WTF_CSRF_ENABLED"] = True
