//! A canary rollout as plain data: its plan (route, baseline and canary pools, the canary's
//! share per step, how long each step holds, the thresholds), where it stands, and the
//! decisions it took with the figures behind each. [`Rollout::decide`] is the controller's
//! whole judgement — advance, promote, roll back or hold — from the cluster's summed outcomes;
//! storing the rollout, summing the nodes' figures and applying the weights is the control
//! plane's job (`control::rollout`).

use serde::{Deserialize, Serialize};

use super::canary::{Judgement, Thresholds, Verdict, judge};
use crate::routing::outcomes::Tally;

/// The canary's share per step when the start names none (percent).
pub const DEFAULT_STEPS: [f64; 6] = [1.0, 5.0, 10.0, 25.0, 50.0, 100.0];
/// How long a step holds when the start names no `hold`.
pub const DEFAULT_HOLD_MS: u64 = 60_000;
/// A rollout's weights sum to this: a step of 1 % is 10,000 of it, 0.0001 % is 1.
pub const TOTAL: u32 = 1_000_000;
/// Decisions kept in a rollout's history (the first, its start, always stays).
pub const MAX_HISTORY: usize = 200;
/// Most steps a rollout takes.
pub const MAX_STEPS: usize = 100;

/// What a rollout does, fixed when it starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub route: String,
    pub baseline: String,
    pub canary: String,
    /// The canary's share per step (percent), increasing, each in (0, 100].
    pub steps: Vec<f64>,
    pub hold_ms: u64,
    pub thresholds: Thresholds,
    /// The route's weights when the rollout started, per pool, scaled to sum to [`TOTAL`]
    /// (the canary's 0): the baseline's share is what moves to the canary, step by step; any
    /// other pool of the route keeps its own.
    pub start: Vec<(String, u32)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Judged on every tick; advances, promotes or rolls back by itself.
    Running,
    /// Holds its step until resumed (or promoted, or rolled back).
    Paused,
    /// The canary took the baseline's whole share.
    Promoted,
    /// The canary is back to 0 %.
    RolledBack,
}

impl Phase {
    /// Running or paused: the route is the rollout's to weigh.
    pub fn is_active(self) -> bool {
        matches!(self, Phase::Running | Phase::Paused)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Running => "running",
            Phase::Paused => "paused",
            Phase::Promoted => "promoted",
            Phase::RolledBack => "rolled_back",
        }
    }
}

/// The baseline's and the canary's outcomes: one node's reading, a window, or the cluster's sum.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pair {
    pub baseline: Tally,
    pub canary: Tally,
}

impl Pair {
    /// What happened between `earlier` and this reading.
    pub fn since(&self, earlier: &Pair) -> Pair {
        Pair {
            baseline: self.baseline.since(&earlier.baseline),
            canary: self.canary.since(&earlier.canary),
        }
    }

    /// Adds another node's reading.
    pub fn add(&mut self, other: &Pair) {
        self.baseline.add(&other.baseline);
        self.canary.add(&other.canary);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Start,
    Advance,
    Promote,
    Rollback,
    Pause,
    Resume,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Advance => "advance",
            Action::Promote => "promote",
            Action::Rollback => "rollback",
            Action::Pause => "pause",
            Action::Resume => "resume",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// The rollout's own judgement.
    Controller,
    /// An operator, through the admin API.
    Admin,
}

/// One change of a rollout, with what it was based on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub at_ms: u64,
    pub action: Action,
    pub by: By,
    /// The step after the change, and the canary's share then (percent).
    pub step: usize,
    pub percent: f64,
    pub reason: String,
    /// The figures the controller judged on (`None` for an operator's change).
    pub judgement: Option<Judgement>,
}

/// A rollout and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rollout {
    pub id: String,
    pub plan: Plan,
    pub phase: Phase,
    /// Index into `plan.steps`.
    pub step: usize,
    pub step_started_ms: u64,
    /// The cluster's sums when the step's window opened; `None` until the deciding node
    /// reads them (after a start or a resume made on any node).
    pub window_start: Option<Pair>,
    /// The controller's last judgement of the current window.
    pub last: Option<Judgement>,
    pub history: Vec<Decision>,
    /// Bumped by every stored change: a write based on an older version is refused.
    pub version: u64,
    pub created_ms: u64,
    pub updated_ms: u64,
}

/// What the controller makes of a window.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// No change: too few requests, or healthy before the hold is over.
    Hold(Judgement),
    /// Advance, promote or roll back.
    Change(Action, Judgement),
}

impl Rollout {
    pub fn new(id: String, plan: Plan, now_ms: u64) -> Rollout {
        let mut rollout = Rollout {
            id,
            plan,
            phase: Phase::Running,
            step: 0,
            step_started_ms: now_ms,
            window_start: None,
            last: None,
            history: Vec::new(),
            version: 0,
            created_ms: now_ms,
            updated_ms: now_ms,
        };
        let reason = format!(
            "canary {:?} at {} % of baseline {:?}'s share",
            rollout.plan.canary,
            rollout.percent(),
            rollout.plan.baseline
        );
        rollout.record(Action::Start, By::Admin, now_ms, reason, None);
        rollout
    }

    /// The canary's share of the baseline's traffic now (percent).
    pub fn percent(&self) -> f64 {
        match self.phase {
            Phase::RolledBack => 0.0,
            Phase::Promoted => 100.0,
            Phase::Running | Phase::Paused => {
                self.plan.steps[self.step.min(self.plan.steps.len() - 1)]
            }
        }
    }

    /// The route's weights now, per pool: the baseline's starting share split between it and
    /// the canary by [`Rollout::percent`], every other pool as it started.
    pub fn weights(&self) -> Vec<(String, u32)> {
        let share = self
            .plan
            .start
            .iter()
            .find(|(p, _)| *p == self.plan.baseline)
            .map_or(0, |(_, w)| *w);
        let canary = (f64::from(share) * self.percent() / 100.0).round() as u32;
        let mut weights: Vec<(String, u32)> = self
            .plan
            .start
            .iter()
            .filter(|(p, _)| *p != self.plan.canary)
            .map(|(p, w)| match *p == self.plan.baseline {
                true => (p.clone(), share - canary.min(share)),
                false => (p.clone(), *w),
            })
            .collect();
        weights.push((self.plan.canary.clone(), canary.min(share)));
        weights
    }

    /// The controller's judgement of the step's window, given the cluster's sums now.
    /// Failing rolls back at once; healthy advances (or promotes, when the next step would
    /// be 100 % or there is none) once the step has held for the plan's hold; too few
    /// requests hold.
    pub fn decide(&self, now_ms: u64, sums: &Pair) -> Next {
        let window = match &self.window_start {
            Some(start) => sums.since(start),
            None => Pair::default(),
        };
        let j = judge(&window.baseline, &window.canary, &self.plan.thresholds);
        let held = now_ms.saturating_sub(self.step_started_ms) >= self.plan.hold_ms;
        let last = self
            .plan
            .steps
            .get(self.step + 1)
            .is_none_or(|next| *next >= 100.0);
        match j.verdict {
            Verdict::Failing => Next::Change(Action::Rollback, j),
            Verdict::TooFew => Next::Hold(j),
            Verdict::Healthy if !held => Next::Hold(j),
            Verdict::Healthy if last => Next::Change(Action::Promote, j),
            Verdict::Healthy => Next::Change(Action::Advance, j),
        }
    }

    /// Opens the step's window at the cluster's sums now (the deciding node does this for a
    /// window a start or resume left unopened).
    pub fn open_window(&mut self, now_ms: u64, sums: &Pair) {
        self.window_start = Some(sums.clone());
        self.step_started_ms = now_ms;
        self.version += 1;
        self.updated_ms = now_ms;
    }

    /// Whether `action` applies to the rollout as it stands; `Err` says why not.
    pub fn allows(&self, action: Action) -> Result<(), String> {
        let ok = match action {
            Action::Pause => self.phase == Phase::Running,
            Action::Resume => self.phase == Phase::Paused,
            Action::Promote | Action::Rollback | Action::Advance => self.phase.is_active(),
            Action::Start => false,
        };
        match ok {
            true => Ok(()),
            false => Err(format!(
                "rollout {} is {}: it cannot {}",
                self.id,
                self.phase.as_str(),
                action.as_str()
            )),
        }
    }

    /// Applies `action` (checked with [`Rollout::allows`]) and records it. `sums`: the
    /// cluster's sums, when the caller has them (the window of a new step opens there).
    pub fn apply(
        &mut self,
        action: Action,
        by: By,
        now_ms: u64,
        sums: Option<&Pair>,
        reason: String,
        judgement: Option<Judgement>,
    ) {
        match action {
            Action::Advance => {
                self.step = (self.step + 1).min(self.plan.steps.len() - 1);
                self.step_started_ms = now_ms;
                self.window_start = sums.cloned();
            }
            Action::Promote => self.phase = Phase::Promoted,
            Action::Rollback => self.phase = Phase::RolledBack,
            Action::Pause => self.phase = Phase::Paused,
            Action::Resume => {
                // A paused step's figures are stale: its window starts again.
                self.phase = Phase::Running;
                self.step_started_ms = now_ms;
                self.window_start = sums.cloned();
            }
            Action::Start => {}
        }
        if judgement.is_some() {
            self.last = judgement.clone();
        }
        self.version += 1;
        self.updated_ms = now_ms;
        self.record(action, by, now_ms, reason, judgement);
    }

    fn record(
        &mut self,
        action: Action,
        by: By,
        now_ms: u64,
        reason: String,
        judgement: Option<Judgement>,
    ) {
        if self.history.len() >= MAX_HISTORY {
            self.history.remove(1);
        }
        self.history.push(Decision {
            at_ms: now_ms,
            action,
            by,
            step: self.step,
            percent: self.percent(),
            reason,
            judgement,
        });
    }
}

/// Checks a plan's steps: at least one, at most [`MAX_STEPS`], each in (0, 100], increasing.
pub fn check_steps(steps: &[f64]) -> Result<(), String> {
    if steps.is_empty() {
        return Err("field `steps`: give at least one step (percent of traffic)".into());
    }
    if steps.len() > MAX_STEPS {
        return Err(format!(
            "field `steps`: {} steps, at most {MAX_STEPS}",
            steps.len()
        ));
    }
    for (i, step) in steps.iter().enumerate() {
        if !step.is_finite() || *step <= 0.0 || *step > 100.0 {
            return Err(format!(
                "field `steps[{i}]`: {step} is not a percent in (0, 100]"
            ));
        }
        if i > 0 && *step <= steps[i - 1] {
            return Err(format!(
                "field `steps[{i}]`: {step} does not increase on the step before it ({})",
                steps[i - 1]
            ));
        }
    }
    Ok(())
}

/// Checks thresholds: ratios in [1, 100], the error margin in [0, 100] percentage points, the
/// latency margin in [0, 60000] ms, the minimum requests in [1, 10^9].
pub fn check_thresholds(t: &Thresholds) -> Result<(), String> {
    let ratio = |name: &str, v: f64| match v.is_finite() && (1.0..=100.0).contains(&v) {
        true => Ok(()),
        false => Err(format!(
            "field `thresholds.{name}`: {v} is out of range (1 to 100)"
        )),
    };
    ratio("error_ratio", t.error_ratio)?;
    ratio("latency_ratio", t.latency_ratio)?;
    if !t.latency_margin_ms.is_finite() || !(0.0..=60_000.0).contains(&t.latency_margin_ms) {
        return Err(format!(
            "field `thresholds.latency_margin_ms`: {} is out of range (0 to 60000)",
            t.latency_margin_ms
        ));
    }
    if !t.error_margin_pp.is_finite() || !(0.0..=100.0).contains(&t.error_margin_pp) {
        return Err(format!(
            "field `thresholds.error_margin_pp`: {} is out of range (0 to 100 percentage points)",
            t.error_margin_pp
        ));
    }
    if !(1..=1_000_000_000).contains(&t.min_requests) {
        return Err(format!(
            "field `min_requests`: {} is out of range (1 to 1000000000)",
            t.min_requests
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::routing::outcomes::Outcomes;

    fn plan(steps: &[f64]) -> Plan {
        Plan {
            route: "api".into(),
            baseline: "v1".into(),
            canary: "v2".into(),
            steps: steps.to_vec(),
            hold_ms: 10_000,
            thresholds: Thresholds {
                min_requests: 100,
                ..Thresholds::default()
            },
            start: vec![("v1".into(), TOTAL)],
        }
    }

    /// Cluster sums: `n` requests on each side, `canary_errors` of the canary's failing.
    fn sums(n: u64, canary_errors: u64) -> Pair {
        let (b, c) = (Outcomes::default(), Outcomes::default());
        for i in 0..n {
            b.record(200, Duration::from_millis(10));
            c.record(
                if i < canary_errors { 503 } else { 200 },
                Duration::from_millis(10),
            );
        }
        Pair {
            baseline: b.tally(),
            canary: c.tally(),
        }
    }

    fn started(steps: &[f64]) -> Rollout {
        let mut r = Rollout::new("r1".into(), plan(steps), 0);
        r.open_window(0, &Pair::default());
        r
    }

    #[test]
    fn a_healthy_step_holds_for_its_hold_then_advances_and_the_last_promotes() {
        let mut r = started(&[10.0, 50.0, 100.0]);
        assert_eq!(
            r.weights(),
            vec![("v1".into(), 900_000), ("v2".into(), 100_000)]
        );
        assert!(matches!(r.decide(5_000, &sums(500, 0)), Next::Hold(_)));
        let Next::Change(Action::Advance, j) = r.decide(10_000, &sums(500, 0)) else {
            panic!("a healthy step past its hold advances");
        };
        r.apply(
            Action::Advance,
            By::Controller,
            10_000,
            Some(&sums(500, 0)),
            j.reason.clone(),
            Some(j),
        );
        assert_eq!((r.step, r.percent()), (1, 50.0));
        // The new window starts empty: too few requests, whatever the time.
        assert!(matches!(r.decide(30_000, &sums(500, 0)), Next::Hold(_)));
        assert!(matches!(
            r.decide(30_000, &sums(1_000, 0)),
            Next::Change(Action::Promote, _)
        ));
        r.apply(
            Action::Promote,
            By::Controller,
            30_000,
            None,
            String::new(),
            None,
        );
        assert_eq!(r.weights(), vec![("v1".into(), 0), ("v2".into(), TOTAL)]);
        assert_eq!(r.history.len(), 3);
    }

    #[test]
    fn a_failing_canary_rolls_back_before_its_hold_and_back_to_its_start() {
        let r = started(&DEFAULT_STEPS);
        let Next::Change(Action::Rollback, j) = r.decide(1_000, &sums(200, 10)) else {
            panic!("5 % errors roll back");
        };
        assert!(j.reason.contains("5.00 %"), "{}", j.reason);
        let mut r = r;
        r.apply(
            Action::Rollback,
            By::Controller,
            1_000,
            None,
            j.reason.clone(),
            Some(j),
        );
        assert_eq!(r.weights(), vec![("v1".into(), TOTAL), ("v2".into(), 0)]);
        assert!(r.allows(Action::Pause).is_err());
    }

    #[test]
    fn other_pools_of_a_split_keep_their_share() {
        let mut p = plan(&[50.0]);
        p.start = vec![("v1".into(), 800_000), ("v3".into(), 200_000)];
        let r = Rollout::new("r".into(), p, 0);
        assert_eq!(
            r.weights(),
            vec![
                ("v1".into(), 400_000),
                ("v3".into(), 200_000),
                ("v2".into(), 400_000)
            ]
        );
    }

    #[test]
    fn steps_and_thresholds_out_of_range_say_which_field() {
        assert!(check_steps(&DEFAULT_STEPS).is_ok());
        assert!(check_steps(&[]).unwrap_err().contains("`steps`"));
        assert!(check_steps(&[5.0, 5.0]).unwrap_err().contains("`steps[1]`"));
        assert!(
            check_steps(&[10.0, 101.0])
                .unwrap_err()
                .contains("(0, 100]")
        );
        assert!(check_steps(&[0.0]).unwrap_err().contains("`steps[0]`"));
        let bad = Thresholds {
            error_ratio: 0.5,
            ..Thresholds::default()
        };
        assert!(check_thresholds(&bad).unwrap_err().contains("error_ratio"));
        assert!(check_thresholds(&Thresholds::default()).is_ok());
    }
}
