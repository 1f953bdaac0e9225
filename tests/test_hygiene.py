"""Data hygiene: the fields routing and scoring need, read from the definitions."""

from __future__ import annotations

from datetime import UTC, datetime

from analysis.hygiene import HygieneSubject, hygiene_report, requirements_of
from definitions import SCORING, read_file
from tests.conftest import REPO

NOW = datetime(2026, 12, 5, tzinfo=UTC)


def test_the_needed_fields_come_from_routing_and_the_scoring_model() -> None:
    model = read_file(SCORING, REPO / "config" / "scoring.yaml")
    needed = {r.name: r.needed_by for r in requirements_of(model)}
    assert needed["country"] == ("routing", "scoring")
    assert needed["company_domain"] == ("routing",)
    assert needed["company_size"] == ("scoring",) and needed["tech_stack"] == ("scoring",)
    assert "seniority or title" in needed and "email_domain" in needed


def test_alternatives_count_and_records_with_most_gaps_come_first() -> None:
    model = read_file(SCORING, REPO / "config" / "scoring.yaml")
    subjects = [
        HygieneSubject("u-region", "Lead", {"region": "EMEA", "industry": "Software"}, True),
        HygieneSubject("u-none", None, {}, False),
    ]
    report = hygiene_report(subjects, requirements_of(model), NOW, limit=1)
    assert (report.contacts, report.incomplete, len(report.records)) == (2, 2, 1)
    assert report.records[0].user_id == "u-none"
    country = next(line for line in report.fields if line.field == "country")
    assert (country.missing, country.share) == (1, 0.5), "a region stands in for a country"
