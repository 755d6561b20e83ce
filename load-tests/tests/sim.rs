//! The global simulator: viewers are conserved, placement is the router's own region code,
//! a lost region's viewers reach the next nearest region with room, the DNS baseline is
//! slower than the directory with the SDK, and bad input is named.

use switchyard_load::sim::engine::{Engine, Policy, Settings};
use switchyard_load::sim::world::{self, Metro, Region, parse_metros, parse_regions};
use switchyard_load::sim::{self, Options, SimError};
use switchyard_regions::{Candidate, order};

/// Three regions on a line west to east, and viewers in three cities near the first.
fn line_world() -> (Vec<Region>, Vec<Metro>) {
    let regions = parse_regions(
        "test",
        "name,city,lat,lon\nwest,Dublin,53.35,-6.26\nmiddle,Frankfurt,50.11,8.68\neast,Warsaw,52.23,21.01\n",
    )
    .unwrap();
    let metros = parse_metros(
        "test",
        "name,country,lat,lon,population,utc_offset_h\n\
         Dublin,IE,53.35,-6.26,3000000,0\nCork,IE,51.90,-8.47,2000000,0\nBelfast,GB,54.60,-5.93,1000000,0\n",
    )
    .unwrap();
    (regions, metros)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-6 * a.abs().max(b.abs()).max(1.0)
}

#[test]
fn no_viewer_is_lost_or_counted_twice() {
    let engine = Engine::new(
        world::regions().unwrap(),
        world::metros().unwrap(),
        Settings::default(),
    );
    let n = engine.regions.len();
    let capacity = engine.capacity();
    for hour in [0.0, 6.25, 14.25, 20.5] {
        let demand: f64 = (0..engine.metros.len())
            .map(|m| engine.demand(m, hour, &|_| 1.0))
            .sum();
        for lost in [vec![], vec![0], vec![3, 7]] {
            let alive: Vec<bool> = (0..n).map(|r| !lost.contains(&r)).collect();
            let a = engine.assign(hour, &|_| 1.0, &alive, &capacity);
            let flows: f64 = a.flows.iter().map(|f| f.2).sum();
            assert!(
                close(flows + a.unserved, demand),
                "hour {hour}, lost {lost:?}"
            );
            assert!(close(a.sessions.iter().sum::<f64>(), flows));
            for r in &lost {
                assert_eq!(a.sessions[*r], 0.0, "a lost region serves nobody");
            }
        }
    }
    // A failover: everyone moved is back, or counted as having given up.
    let f = engine.failover(14.25, &[0], Policy::DirectorySdk);
    let back: f64 = f.per_second.iter().flatten().sum();
    assert!(f.moved > 0.0);
    assert!(
        close(back + f.gave_up, f.moved),
        "{back} + {} vs {}",
        f.gave_up,
        f.moved
    );
}

#[test]
fn placement_is_the_routers_directory_order() {
    // Sampled cohorts: the simulator's choice for each metro is the first region of the
    // router's own order (`switchyard_regions::order`, which the router's Directory calls).
    let engine = Engine::new(
        world::regions().unwrap(),
        world::metros().unwrap(),
        Settings::default(),
    );
    let n = engine.regions.len();
    let mut alive = vec![true; n];
    alive[5] = false;
    let capacity = vec![f64::INFINITY; n];
    let a = engine.assign(12.0, &|_| 1.0, &alive, &capacity);
    let candidates: Vec<Candidate> = engine
        .regions
        .iter()
        .enumerate()
        .map(|(i, r)| Candidate {
            location: Some(r.at),
            healthy: alive[i],
            evacuating: false,
            load: 0.0,
        })
        .collect();
    for m in (0..engine.metros.len()).step_by(7) {
        let routers_first = order(&candidates, engine.metros[m].at)[0];
        let served: Vec<usize> = a.flows.iter().filter(|f| f.0 == m).map(|f| f.1).collect();
        assert!(
            served.contains(&routers_first),
            "{}: served by {served:?}, the router's order starts with {routers_first}",
            engine.metros[m].name
        );
    }
}

#[test]
fn a_lost_regions_viewers_go_to_the_next_nearest_region_with_room() {
    let (regions, metros) = line_world();
    // Small regions (2 nodes of 100,000 sessions each in the middle and the east): the middle
    // cannot take all of the west's viewers, the middle and the east together can.
    let mut settings = Settings {
        viewers: 300_000.0,
        headroom: 0.6,
        ..Settings::default()
    };
    settings.node.sessions = 100_000.0;
    let engine = Engine::new(regions, metros, settings);
    let capacity = engine.capacity();
    let (west, middle, east) = (0, 1, 2);
    let before = engine.assign(20.0, &|_| 1.0, &[true; 3], &capacity);
    assert!(before.sessions[west] > 0.0 && before.sessions[middle] == 0.0);
    let f = engine.failover(20.0, &[west], Policy::DirectorySdk);
    assert_eq!(f.after[west], 0.0);
    assert!(f.after[middle] > 0.0, "the next nearest took viewers");
    // The middle region is filled to its overflow threshold; the rest went one further.
    let limit = |r: usize| engine.settings.overflow_load * capacity[r];
    assert!(
        f.moved > limit(middle) && f.moved < limit(middle) + limit(east),
        "{}",
        f.moved
    );
    let slack = f.moved / 100.0;
    assert!(
        f.after[middle] <= limit(middle) + slack,
        "{} > {}",
        f.after[middle],
        limit(middle)
    );
    assert!(
        f.after[east] > 0.0,
        "the surplus went on to the next region"
    );
    assert!(
        f.after[east] <= limit(east) + slack,
        "{} > {}",
        f.after[east],
        limit(east)
    );
    assert!(close(
        f.after.iter().sum::<f64>() + f.gave_up,
        before.sessions.iter().sum()
    ));
}

#[test]
fn the_dns_baseline_is_slower_to_reconnect() {
    let engine = Engine::new(
        world::regions().unwrap(),
        world::metros().unwrap(),
        Settings::default(),
    );
    let capacity = engine.capacity();
    let n = engine.regions.len();
    let a = engine.assign(20.0, &|_| 1.0, &vec![true; n], &capacity);
    let busiest = (0..n)
        .max_by(|x, y| a.sessions[*x].total_cmp(&a.sessions[*y]))
        .unwrap();
    let sdk = engine.failover(20.0, &[busiest], Policy::DirectorySdk);
    let dns = engine.failover(20.0, &[busiest], Policy::Dns);
    assert!(sdk.moved > 0.0 && close(sdk.moved, dns.moved));
    assert!(dns.t50 > sdk.t50, "t50: DNS {} vs SDK {}", dns.t50, sdk.t50);
    assert!(dns.t99 > sdk.t99, "t99: DNS {} vs SDK {}", dns.t99, sdk.t99);
}

#[test]
fn every_scenario_runs_and_reports() {
    let outcome = sim::run(&Options {
        scenario: "all".to_string(),
        viewers: 200e6,
        headroom: 0.6,
        overflow_load: 0.9,
        node_sessions: None,
        out: None,
        progress: false,
    })
    .unwrap();
    assert_eq!(outcome.reports.len(), sim::scenarios::NAMES.len());
    let text = sim::print(&outcome);
    for name in sim::scenarios::NAMES {
        assert!(text.contains(&format!("== {name}:")), "{name} missing");
    }
    let dns = outcome
        .reports
        .iter()
        .find(|r| r.scenario == "dns-baseline")
        .unwrap();
    assert_eq!(dns.waves.len(), 2);
}

#[test]
fn bad_input_is_named() {
    let options = |scenario: &str, headroom: f64| Options {
        scenario: scenario.to_string(),
        viewers: 1e6,
        headroom,
        overflow_load: 0.9,
        node_sessions: None,
        out: None,
        progress: false,
    };
    let err = sim::run(&options("tuesday", 0.6)).err().unwrap();
    assert!(matches!(err, SimError::UnknownScenario(_)));
    assert!(
        err.to_string().contains("expected one of normal-day"),
        "{err}"
    );
    let err = sim::run(&options("all", 0.0)).err().unwrap();
    assert_eq!(err.to_string(), "--headroom: 0 must be in (0, 1]");
    let zero = Options {
        node_sessions: Some(0.0),
        ..options("all", 0.6)
    };
    let err = sim::run(&zero).err().unwrap();
    assert!(
        err.to_string()
            .starts_with("--node-sessions: 0 must be at least 1"),
        "{err}"
    );
    let err = parse_regions("regions.csv", "name,city,lat\nx,X,1\n").unwrap_err();
    assert_eq!(err.to_string(), "regions.csv line 2, field lon: missing");
    let err = parse_metros(
        "metros.csv",
        "name,country,lat,lon,population,utc_offset_h\nA,AA,10,200,5,0\n",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "metros.csv line 2, field lon: longitude 200 is outside -180..=180"
    );
}

#[test]
fn the_command_takes_a_scenario_and_prints_json() {
    let out = tempfile_dir();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard-load"))
        .args(["sim", "--scenario", "dns-baseline", "--json", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let value: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let report = &value["reports"][0];
    assert_eq!(report["scenario"], "dns-baseline");
    assert_eq!(report["waves"].as_array().unwrap().len(), 2);
    assert!(out.join("wave-dns-baseline.svg").exists());
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard-load"))
        .args(["sim", "--scenario", "tuesday"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown scenario \"tuesday\""));
    let _ = std::fs::remove_dir_all(&out);
}

/// A fresh folder for a run's charts.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("switchyard-sim-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
