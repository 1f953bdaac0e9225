"""Segment's reserved traits mapped onto the profile keys revops reads.

Scoring, lists and routing look at flat keys: ``title``, ``company``, ``company_size``,
``industry``, ``country``, ``timezone``, ``email`` (the workflow sees only its domain). Segment
SDKs send some of these nested (``company.employee_count``, ``address.country``) or under
other names (``employees``, ``timeZone``); this module flattens them once, at the edge, so no
rule has to know every SDK's spelling. The original traits are kept alongside.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

__all__ = ["group_traits", "identify_traits", "page_properties"]

_SIZE_KEYS = ("company_size", "companySize", "employees", "employee_count", "numberOfEmployees")
_TIMEZONE_KEYS = ("timezone", "timeZone", "time_zone")
_PAGE_KEYS = ("path", "url", "title", "referrer", "search")


def _size(value: Any) -> Any:
    """Employee counts as numbers when they are numbers ("450" -> 450), else as given."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return value


def _first(source: dict[str, Any], keys: tuple[str, ...]) -> Any:
    return next((source[k] for k in keys if source.get(k) not in (None, "")), None)


def _set_missing(target: dict[str, Any], key: str, value: Any) -> None:
    if value not in (None, "") and target.get(key) in (None, ""):
        target[key] = value


def identify_traits(traits: dict[str, Any], context: dict[str, Any]) -> dict[str, Any]:
    """Identify traits with the flat profile keys filled in."""
    profile = dict(traits)
    company = traits.get("company")
    if isinstance(company, dict):
        profile["company"] = company.get("name")
        _set_missing(profile, "industry", company.get("industry"))
        _set_missing(profile, "company_size", _first(company, _SIZE_KEYS))
    _set_missing(profile, "company_size", _size(_first(traits, _SIZE_KEYS)))
    if "company_size" in profile:
        profile["company_size"] = _size(profile["company_size"])
    address = traits.get("address")
    if isinstance(address, dict):
        _set_missing(profile, "country", address.get("country"))
    _set_missing(profile, "timezone", _first(traits, _TIMEZONE_KEYS) or context.get("timezone"))
    return {k: v for k, v in profile.items() if v is not None}


def _domain(website: Any) -> str | None:
    if not isinstance(website, str) or not website.strip():
        return None
    text = website.strip().lower()
    host = urlsplit(text if "//" in text else f"//{text}").hostname
    return host.removeprefix("www.") if host else None


def group_traits(traits: dict[str, Any]) -> dict[str, Any]:
    """An account's traits as the member contact's company facts (name, industry, size)."""
    profile: dict[str, Any] = {}
    _set_missing(profile, "company", traits.get("name"))
    _set_missing(profile, "industry", traits.get("industry"))
    _set_missing(profile, "company_size", _size(_first(traits, _SIZE_KEYS)))
    _set_missing(profile, "account_domain", _domain(traits.get("website")))
    _set_missing(profile, "plan", traits.get("plan"))
    return profile


def page_properties(
    properties: dict[str, Any], context: dict[str, Any], category: str | None
) -> dict[str, Any]:
    """Page properties with ``path``/``url`` (from ``context.page`` when absent) and category.

    The page name is in the event name already ("Pricing Page Viewed"); a ``name`` property
    would be dropped on the way to the workflow anyway (it is a personal-data key).
    """
    page = context.get("page")
    merged = dict(properties)
    if isinstance(page, dict):
        for key in _PAGE_KEYS:
            _set_missing(merged, key, page.get(key))
    _set_missing(merged, "category", category)
    return merged
