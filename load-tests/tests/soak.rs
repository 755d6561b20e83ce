//! `switchyard-load scenario soak --duration 20s` as a user runs it: real router, backends and
//! `redis-server`, one cycle of drain, undrain, reload and Redis restart under mixed traffic;
//! the verdict passes, every fault happened and the router was sampled throughout.

use std::process::Command;
use std::time::{Duration, Instant};

const LOAD: &str = env!("CARGO_BIN_EXE_switchyard-load");

/// The number just before `what` in `line` (`"…, 3 drains, …"` → 3 for `" drains"`).
fn figure(line: &str, what: &str) -> u64 {
    let (before, _) = line
        .split_once(what)
        .unwrap_or_else(|| panic!("no {what:?} in {line:?}"));
    before
        .rsplit([' ', ','])
        .find(|w| !w.is_empty())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number before {what:?} in {line:?}"))
}

#[test]
fn a_short_soak_passes_with_every_fault_and_samples_throughout() {
    switchyard_load::procs::required_binary("switchyard", "SWITCHYARD_BIN");
    let started = Instant::now();
    let out = Command::new(LOAD)
        .args(["scenario", "soak", "--duration", "20s"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let verdict = stdout.lines().last().unwrap_or("");
    assert!(verdict.starts_with("soak: "), "{stdout}\n{stderr}");
    assert_eq!(figure(verdict, " failed"), 0, "{verdict}\n{stderr}");
    for fault in [" drains", " reloads", " redis restarts"] {
        assert!(figure(verdict, fault) >= 1, "{fault}: {verdict}");
    }
    // 300 a second is 6,000; a busy machine may fall behind, never to nothing.
    assert!(figure(verdict, " requests") >= 2000, "{verdict}");
    assert!(
        figure(verdict, " reloads") >= 2,
        "the admin API and SIGHUP: {verdict}"
    );
    // A sample a second, each said in a line of its own: 20, fewer on a busy machine.
    let samples = figure(verdict, " samples");
    assert!(samples >= 10, "{verdict}");
    let sample_lines = stderr.lines().filter(|l| l.contains(" MB  fds ")).count();
    assert_eq!(sample_lines as u64, samples, "{stderr}");
    assert!(
        verdict.contains("RSS ") && verdict.contains("fds "),
        "{verdict}"
    );
    assert!(started.elapsed() < Duration::from_secs(60), "{stderr}");
}
