//! Showing a rollout move: progress bars per wave in a terminal, plain lines otherwise; the
//! compliance table and the decision log at the end.

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::Value;
use std::io::IsTerminal;

/// Live progress of one rollout.
pub struct Progress {
    bars: Option<(MultiProgress, ProgressBar, Vec<ProgressBar>)>,
    last_state: String,
    last_lines: Vec<String>,
}

impl Progress {
    /// Bars when stdout is a terminal, plain lines otherwise.
    pub fn new(groups: &[(&str, usize)]) -> Self {
        let bars = std::io::stdout().is_terminal().then(|| {
            let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
            let phase = multi.add(ProgressBar::new_spinner());
            phase.set_style(
                ProgressStyle::with_template("{spinner} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            let style =
                ProgressStyle::with_template("{prefix:>8} [{bar:40}] {pos:>5}/{len:5} {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> ");
            let waves = groups
                .iter()
                .map(|(name, count)| {
                    let bar = multi.add(ProgressBar::new(*count as u64));
                    bar.set_style(style.clone());
                    bar.set_prefix(name.to_string());
                    bar
                })
                .collect();
            (multi, phase, waves)
        });
        Progress {
            bars,
            last_state: String::new(),
            last_lines: Vec::new(),
        }
    }

    /// A line above the bars (or on its own).
    pub fn line(&self, text: &str) {
        match &self.bars {
            Some((multi, _, _)) => {
                let _ = multi.println(text);
            }
            None => println!("{text}"),
        }
    }

    /// Shows a rollout view.
    pub fn update(&mut self, view: &Value) {
        let state = view["state"].as_str().unwrap_or("?").to_string();
        let waves = view["waves"].as_array().cloned().unwrap_or_default();
        let rollback = view["rollback"]["groups"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if let Some((_, phase, bars)) = &self.bars {
            phase.set_message(format!(
                "{state}{}",
                view["currentWave"]
                    .as_str()
                    .map(|w| format!(" — wave {w}"))
                    .unwrap_or_default()
            ));
            phase.tick();
            for (bar, wave) in bars.iter().zip(&waves) {
                let counts = &wave["counts"];
                let n = |k: &str| counts[k].as_u64().unwrap_or(0);
                bar.set_position(n("succeeded") + n("failed") + n("timedOut"));
                bar.set_message(format!(
                    "{} ok {} failed  {}",
                    n("succeeded"),
                    n("failed") + n("timedOut"),
                    wave["status"].as_str().unwrap_or("")
                ));
            }
        } else {
            let lines = plain_lines(&state, &waves, &rollback);
            for line in lines.iter().filter(|l| !self.last_lines.contains(l)) {
                println!("{line}");
            }
            self.last_lines = lines;
        }
        if state != self.last_state {
            self.line(&format!("state: {state}"));
            self.last_state = state;
        }
    }

    /// Clears the bars and prints the final state.
    pub fn finish(&mut self, view: &Value) {
        if let Some((_, phase, bars)) = self.bars.take() {
            for bar in bars {
                bar.finish();
            }
            phase.finish_with_message(format!(
                "finished: {}",
                view["state"].as_str().unwrap_or("?")
            ));
        }
        println!(
            "rollout {} finished: {}",
            view["id"].as_str().unwrap_or("?"),
            view["state"].as_str().unwrap_or("?")
        );
    }
}

fn plain_lines(state: &str, waves: &[Value], rollback: &[Value]) -> Vec<String> {
    let mut lines: Vec<String> = waves
        .iter()
        .map(|wave| {
            let c = &wave["counts"];
            let n = |k: &str| c[k].as_u64().unwrap_or(0);
            // report in steps of a quarter so the output stays short
            let done = n("succeeded") + n("failed") + n("timedOut");
            let total = n("total").max(1);
            format!(
                "[{state}] wave {:<7} {:<9} {:>3}% finished ({} ok, {} failed of {})",
                wave["name"].as_str().unwrap_or("?"),
                wave["status"].as_str().unwrap_or("?"),
                done * 100 / total / 25 * 25,
                n("succeeded") / (total / 4).max(1) * (total / 4).max(1),
                n("failed") + n("timedOut"),
                n("total")
            )
        })
        .collect();
    for group in rollback {
        let c = &group["counts"];
        lines.push(format!(
            "[{state}] rollback {:<7} {} of {} back on the rollback update",
            group["deviceGroup"].as_str().unwrap_or("?"),
            c["succeeded"].as_u64().unwrap_or(0) / 25 * 25,
            c["total"].as_u64().unwrap_or(0)
        ));
    }
    lines
}

/// Hosts and devices side by side.
pub fn compliance_table(compliance: &Value) -> String {
    let mut out = String::from("\ncompliance (hosts and devices against the target update)\n");
    for rollout in compliance["rollouts"].as_array().into_iter().flatten() {
        let target = &rollout["target"];
        out.push_str(&format!(
            "  rollout {} ({}), target {}/{}/{}\n",
            rollout["rolloutId"].as_str().unwrap_or("?"),
            rollout["state"].as_str().unwrap_or("?"),
            target["provider"].as_str().unwrap_or(""),
            target["name"].as_str().unwrap_or(""),
            target["version"].as_str().unwrap_or("")
        ));
        out.push_str(&format!(
            "    {:<10} {:<58} {}\n",
            "host", "resource", "result"
        ));
        for host in rollout["hosts"].as_array().into_iter().flatten() {
            let id = host["id"].as_str().unwrap_or("");
            out.push_str(&format!(
                "    {:<10} {:<58} {}\n",
                host["kind"]
                    .as_str()
                    .unwrap_or("")
                    .replace("maintenanceConfiguration", "schedule"),
                id.rsplit('/').next().unwrap_or(id),
                host["result"].as_str().unwrap_or("")
            ));
        }
        out.push_str(&format!(
            "    {:<10} {:>7} {:>10} {:>7} {:>7} {:>10}\n",
            "group", "devices", "on target", "behind", "failed", "timed out"
        ));
        for group in rollout["devices"].as_array().into_iter().flatten() {
            let n = |k: &str| group[k].as_u64().unwrap_or(0);
            let name = group["deviceGroup"].as_str().unwrap_or("");
            if n("total") == 0 {
                out.push_str(&format!("    {name:<10} {:>7}  (never deployed)\n", 0));
                continue;
            }
            out.push_str(&format!(
                "    {:<10} {:>7} {:>10} {:>7} {:>7} {:>10}\n",
                name,
                n("total"),
                n("onTarget"),
                n("behind"),
                n("failed"),
                n("timedOut")
            ));
        }
    }
    out
}

/// The decision log, one line each.
pub fn decision_log(events: &Value) -> String {
    let mut out = String::from("\ndecision log\n");
    for decision in events["value"].as_array().into_iter().flatten() {
        if decision["kind"] == rollout_core::DecisionKind::WaveMembers.as_str() {
            continue;
        }
        out.push_str(&format!(
            "  {}  {:<28} {}\n",
            decision["at"]
                .as_str()
                .unwrap_or("")
                .get(11..19)
                .unwrap_or(""),
            decision["kind"].as_str().unwrap_or(""),
            decision["reason"].as_str().unwrap_or("")
        ));
    }
    out
}
