"""Place names in the viewer's language: the time-zone pickers' cities and countries, the audience
builder's countries. Values (IANA ids, ISO codes) never change; the order follows the names shown."""
from __future__ import annotations

import re
import unicodedata
from typing import Any

import pytest

pytestmark = pytest.mark.sqlite_only


def zone_options(page: str) -> dict[str, str]:
    """Each zone picker option's value and label (the first picker on the page)."""
    select = re.search(r"<select[^>]*data-zone-picker.*?</select>", page, re.S).group(0)
    return dict(re.findall(r'<option value="([^"]+)"[^>]*>([^<]*)</option>', select))


def cities(page: str, area: str) -> list[str]:
    group = re.search(rf'<optgroup label="{area}">(.*?)</optgroup>', page, re.S).group(1)
    return [label.split(" — ")[0] for label in re.findall(r"<option [^>]*>([^<]*)</option>", group)]


@pytest.mark.parametrize(("language", "new_york", "london", "europe"), [
    ("en", "New York — United States", "London — Britain (UK)", "Europe"),
    ("es", "Nueva York — Estados Unidos", "Londres — Reino Unido", "Europa"),
    ("ca", "Nova York — Estats Units", "Londres — Regne Unit", "Europa"),
])
def test_the_preferences_zone_picker_names_cities_and_countries_in_the_readers_language(
        client_for: Any, make_employee: Any, language: str, new_york: str, london: str, europe: str) -> None:
    page = client_for(make_employee(language=language)).get("/preferences").get_data(as_text=True)
    options = zone_options(page)
    assert options["America/New_York"] == new_york and options["Europe/London"] == london
    assert f'<optgroup label="{europe}">' in page and "Europe/Berlin" in options  # the values stay IANA ids
    europe_cities = cities(page, europe)
    folded = ["".join(ch for ch in unicodedata.normalize("NFKD", c.casefold()) if not unicodedata.combining(ch))
              for c in europe_cities]
    assert folded == sorted(folded)  # "Ámsterdam" among the A's, not after "Zúrich"


def test_the_editors_zone_picker_and_audience_builder_speak_catalan(client_for: Any, make_employee: Any) -> None:
    comms = make_employee(is_comms=True, language="ca", country="DE")
    make_employee(country="US")
    make_employee(country="ES")
    page = client_for(comms).get("/publish/new").get_data(as_text=True)
    assert zone_options(page)["Asia/Tokyo"] == "Tòquio — Japó"
    countries = dict(re.findall(r'name="inc-0-countries" value="([A-Z]{2})" data-label="([^"]+)"', page))
    assert countries == {"DE": "Alemanya", "ES": "Espanya", "US": "Estats Units"}
    assert list(countries.values()) == ["Alemanya", "Espanya", "Estats Units"]


def test_the_audience_builder_names_countries_in_spanish(client_for: Any, make_employee: Any) -> None:
    comms = make_employee(is_comms=True, language="es", country="DE")
    make_employee(country="US")
    make_employee(country="AT")
    page = client_for(comms).get("/publish/new").get_data(as_text=True)
    labels = re.findall(r'name="inc-0-countries" value="[A-Z]{2}" data-label="([^"]+)"', page)
    assert labels == ["Alemania", "Austria", "Estados Unidos"]
    assert zone_options(page)["America/New_York"] == "Nueva York — Estados Unidos"


def test_the_organisation_dashboards_zone_filter_speaks_spanish(client_for: Any, make_employee: Any) -> None:
    page = client_for(make_employee(is_comms=True, language="es")).get("/analytics").get_data(as_text=True)
    assert '<optgroup label="América">' in page and ">Nueva York</option>" in page
    assert 'value="America/New_York"' in page
