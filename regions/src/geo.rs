//! Distances on the Earth.

/// Mean Earth radius (IUGG), km.
pub const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Great-circle distance between two `(lat, lon)` points in degrees (haversine).
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (lat1, lon1) = (a.0.to_radians(), a.1.to_radians());
    let (lat2, lon2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((lat2 - lat1) / 2.0).sin().powi(2)
        + lat1.cos() * lat2.cos() * ((lon2 - lon1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

/// Why `(lat, lon)` is not a place: names the coordinate out of range (or not a number).
pub fn check_lat_lon(lat: f64, lon: f64) -> Result<(), String> {
    if !(-90.0..=90.0).contains(&lat) {
        return Err(format!("latitude {lat} is outside -90..=90"));
    }
    if !(-180.0..=180.0).contains(&lon) {
        return Err(format!("longitude {lon} is outside -180..=180"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_distances() {
        // London – New York, about 5,570 km; a point to itself, 0; antipodes, half the girth.
        let d = distance_km((51.5074, -0.1278), (40.7128, -74.0060));
        assert!((d - 5570.0).abs() < 15.0, "{d}");
        assert_eq!(distance_km((10.0, 20.0), (10.0, 20.0)), 0.0);
        let half = distance_km((0.0, 0.0), (0.0, 180.0));
        assert!((half - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1e-6);
    }

    #[test]
    fn coordinates_out_of_range_are_named() {
        assert!(check_lat_lon(45.0, 9.0).is_ok());
        assert!(
            check_lat_lon(91.0, 0.0)
                .unwrap_err()
                .contains("latitude 91")
        );
        assert!(
            check_lat_lon(0.0, -181.0)
                .unwrap_err()
                .contains("longitude -181")
        );
        assert!(check_lat_lon(f64::NAN, 0.0).is_err());
    }
}
