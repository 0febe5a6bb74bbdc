"""Geography of route choice: region centroids, the region of each country, distances.

``Smsc.region`` names one of :data:`REGION_COORDS`; the geography penalty term is the
great-circle distance from that region to the destination country's region (0 inside it).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

# Region centroids (lat, lon). Smsc.region names one of these; unknown names count as far.
REGION_COORDS: Final[Mapping[str, tuple[float, float]]] = {
    "eu-west": (51.5, -0.1),  # London / Dublin
    "eu-central": (50.1, 8.7),  # Frankfurt
    "eu-north": (59.3, 18.1),  # Stockholm
    "eu-south": (45.5, 9.2),  # Milan
    "eu-southwest": (40.4, -3.7),  # Madrid
    "eu-east": (52.2, 21.0),  # Warsaw
    "me-central": (25.2, 55.3),  # Dubai
    "af-north": (30.0, 31.2),  # Cairo
    "af-west": (6.5, 3.4),  # Lagos
    "af-east": (-1.3, 36.8),  # Nairobi
    "af-south": (-26.2, 28.0),  # Johannesburg
    "us-east": (39.0, -77.5),  # Virginia
    "us-central": (41.9, -87.6),  # Chicago
    "us-west": (37.4, -122.0),  # California
    "ca-central": (45.5, -73.6),  # Montreal
    "mx-central": (19.4, -99.1),  # Mexico City
    "sa-east": (-23.5, -46.6),  # São Paulo
    "sa-west": (-12.0, -77.0),  # Lima
    "ap-south": (19.1, 72.9),  # Mumbai
    "ap-southeast": (1.35, 103.8),  # Singapore
    "ap-east": (22.3, 114.2),  # Hong Kong
    "cn-east": (31.2, 121.5),  # Shanghai
    "ap-northeast": (35.7, 139.7),  # Tokyo
    "au-southeast": (-33.9, 151.2),  # Sydney
}

_REGION_COUNTRIES: Final[Mapping[str, str]] = {
    "eu-west": "GB IE IS FR BE NL LU GG JE IM FO",
    "eu-central": "DE AT CH LI CZ SK HU SI HR",
    "eu-north": "SE NO DK FI EE LV LT AX GL",
    "eu-south": "IT MT SM VA MC GR CY AL MK ME BA RS XK",
    "eu-southwest": "ES PT AD GI",
    "eu-east": "PL RO BG MD UA BY RU GE AM AZ TR KZ",
    "me-central": "AE SA QA BH KW OM YE IQ IR JO LB SY IL PS",
    "af-north": "EG LY TN DZ MA SD",
    "af-west": "NG GH CI SN ML BF NE TG BJ GM GN GW SL LR MR CV CM",
    "af-east": "KE UG TZ RW BI ET SO DJ ER SS",
    "af-south": "ZA NA BW ZW ZM MZ MW LS SZ AO MG MU CD CG GA",
    "us-central": "US PR VI",
    "ca-central": "CA",
    "mx-central": "MX GT BZ SV HN NI CR PA CU JM HT DO BS BB TT",
    "sa-east": "BR AR UY PY",
    "sa-west": "CL PE BO EC CO VE",
    "ap-south": "IN PK BD LK NP BT MV AF",
    "ap-southeast": "SG MY ID TH VN PH KH LA MM BN TL",
    "ap-east": "HK MO TW",
    "cn-east": "CN",
    "ap-northeast": "JP KR MN",
    "au-southeast": "AU NZ PG FJ",
}

COUNTRY_REGION: Final[Mapping[str, str]] = {
    country: region
    for region, countries in _REGION_COUNTRIES.items()
    for country in countries.split()
}


def _great_circle_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0 * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True, slots=True)
class Geography:
    region_coords: Mapping[str, tuple[float, float]] = field(default_factory=lambda: REGION_COORDS)
    country_region: Mapping[str, str] = field(default_factory=lambda: COUNTRY_REGION)
    unknown_region_km: float = 8000.0

    def distance_km(self, smsc_region: str, country: str) -> float | None:
        """SMSC region → destination country's region; None if the country has no region."""
        home = self.region_coords.get(self.country_region.get(country, ""))
        if home is None:
            return None
        if self.country_region.get(country) == smsc_region:
            return 0.0
        there = self.region_coords.get(smsc_region)
        if there is None:
            return self.unknown_region_km
        return round(_great_circle_km(there, home), 1)


DEFAULT_GEOGRAPHY: Final = Geography()
