//! Which region serves a viewer: the directory's order, and where a full region overflows.

use crate::geo::distance_km;

/// Regions this close to one another (from the viewer) count as equally near; the less loaded
/// comes first.
pub const TIE_BAND_KM: f64 = 50.0;

/// A region as a decision sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// Where it is; a region without a location sorts last among its kind.
    pub location: Option<(f64, f64)>,
    /// It answers its probes (or, for the deciding node's own region: it is ready and some
    /// pool has a backend that takes work).
    pub healthy: bool,
    /// An operator evacuates it, or it says it is evacuating.
    pub evacuating: bool,
    /// Sessions and requests over capacity (1.0 = full).
    pub load: f64,
}

impl Candidate {
    /// Healthy and not evacuating: it may be offered to viewers.
    pub fn usable(&self) -> bool {
        self.healthy && !self.evacuating
    }
}

/// The directory's order for a viewer at `from`: indices of `regions`, usable ones first by
/// distance (within [`TIE_BAND_KM`] bands, the less loaded first), then the others in the
/// same order. A viewer takes the first; the SDK moves down the list when one fails.
pub fn order(regions: &[Candidate], from: (f64, f64)) -> Vec<usize> {
    let band = |c: &Candidate| {
        c.location
            .map_or(u64::MAX, |at| (distance_km(from, at) / TIE_BAND_KM) as u64)
    };
    let mut keyed: Vec<(bool, u64, f64, usize)> = regions
        .iter()
        .enumerate()
        .map(|(i, c)| (!c.usable(), band(c), c.load, i))
        .collect();
    // Stable: equal keys keep the configured order.
    keyed.sort_by(|a, b| a.0.cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.total_cmp(&b.2)));
    keyed.into_iter().map(|(_, _, _, i)| i).collect()
}

/// The nearest usable region to `from` other than `this`, among those `reachable` (a router
/// can forward only to regions with an endpoint).
pub fn nearest_other(
    regions: &[Candidate],
    from: Option<(f64, f64)>,
    this: usize,
    reachable: impl Fn(usize) -> bool,
) -> Option<usize> {
    let from = from.unwrap_or((0.0, 0.0));
    let distance = |c: &Candidate| c.location.map_or(f64::MAX, |at| distance_km(from, at));
    let mut best: Option<(f64, usize)> = None;
    for (i, c) in regions.iter().enumerate() {
        if i == this || !c.usable() || !reachable(i) {
            continue;
        }
        let d = distance(c);
        // Strictly nearer only: the first configured wins a tie.
        if best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, i));
        }
    }
    best.map(|(_, i)| i)
}

/// Where region `this` (at `from`) sends what it cannot take: the nearest other usable,
/// reachable region — but only if its load is under `max_load` (a region as full as this one
/// is no better, so then nothing overflows).
pub fn overflow_target(
    regions: &[Candidate],
    from: Option<(f64, f64)>,
    this: usize,
    max_load: f64,
    reachable: impl Fn(usize) -> bool,
) -> Option<usize> {
    nearest_other(regions, from, this, reachable).filter(|&i| regions[i].load < max_load)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(lat: f64, lon: f64, load: f64) -> Candidate {
        Candidate {
            location: Some((lat, lon)),
            healthy: true,
            evacuating: false,
            load,
        }
    }

    const DUBLIN: (f64, f64) = (53.35, -6.26);
    const FRANKFURT: (f64, f64) = (50.11, 8.68);
    const VIRGINIA: (f64, f64) = (38.9, -77.4);

    #[test]
    fn nearest_usable_first_and_unusable_last() {
        let mut regions = vec![
            at(VIRGINIA.0, VIRGINIA.1, 0.1),
            at(FRANKFURT.0, FRANKFURT.1, 0.1),
            at(DUBLIN.0, DUBLIN.1, 0.1),
        ];
        let paris = (48.86, 2.35);
        assert_eq!(order(&regions, paris), vec![1, 2, 0]);
        regions[1].healthy = false;
        assert_eq!(order(&regions, paris), vec![2, 0, 1]);
        regions[2].evacuating = true;
        assert_eq!(order(&regions, paris), vec![0, 1, 2]);
    }

    #[test]
    fn within_a_band_the_less_loaded_comes_first() {
        let regions = vec![at(50.0, 8.0, 0.9), at(50.1, 8.1, 0.2)];
        assert_eq!(order(&regions, (50.05, 8.05)), vec![1, 0]);
    }

    #[test]
    fn overflow_goes_to_the_nearest_other_only_when_it_has_room() {
        let regions = vec![
            at(DUBLIN.0, DUBLIN.1, 1.2),
            at(FRANKFURT.0, FRANKFURT.1, 0.5),
            at(VIRGINIA.0, VIRGINIA.1, 0.0),
        ];
        let all = |_| true;
        assert_eq!(
            overflow_target(&regions, Some(DUBLIN), 0, 1.0, all),
            Some(1)
        );
        // Frankfurt is as full as the threshold: Virginia is not tried instead.
        assert_eq!(overflow_target(&regions, Some(DUBLIN), 0, 0.5, all), None);
        // Unreachable regions are skipped.
        assert_eq!(
            nearest_other(&regions, Some(DUBLIN), 0, |i| i != 1),
            Some(2)
        );
    }
}
