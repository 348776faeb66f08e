//! docs/benchmarks.md: the machine, the date, each figure with its baseline,
//! ratio and goal, and the exact commands.

use std::fmt::Write as _;
use std::path::Path;

use crate::Settings;
use crate::benches::{Figure, Goal, Results};

pub struct Report {
    pub text: String,
    pub results: Results,
}

fn machine() -> (String, String) {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse::<f64>().ok())
        })
        .map_or_else(
            || "unknown".into(),
            |kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0),
        );
    (format!("{cores} cores ({model})"), memory)
}

/// `bench/analysis.md`: where the time goes, from profiles of a run, and
/// what a goal not met would need; the report includes it as it is.
fn analysis_path() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("analysis.md")
}

/// The checked-out commit, marked when the work tree differs from it.
fn commit() -> Option<String> {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let head = git(&["rev-parse", "--short", "HEAD"])?;
    let dirty =
        git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(if dirty {
        format!("{head} with local changes")
    } else {
        head
    })
}

fn number(value: f64) -> String {
    if value.is_nan() {
        "–".into()
    } else if value.abs() >= 100.0 {
        format!("{value:.0}")
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

fn runs(values: &[f64]) -> String {
    values
        .iter()
        .map(|v| number(*v))
        .collect::<Vec<_>>()
        .join(", ")
}

fn goal(figure: &Figure) -> String {
    match figure.goal {
        Goal::RatioAtLeast(r) => format!("ratio ≥ {r}"),
        Goal::AtMost(limit) => format!("≤ {} {}", number(limit), figure.unit),
    }
}

fn row(figure: &Figure) -> String {
    let baseline = figure.baseline_median().map_or_else(
        || "–".to_owned(),
        |b| format!("{} ({})", number(b), runs(&figure.baseline)),
    );
    let ratio = figure
        .ratio()
        .map_or_else(|| "–".to_owned(), |r| format!("{r:.2}"));
    format!(
        "| {} | {} | {} {} ({}) | {} | {} | {} | {} |\n",
        figure.bench,
        figure.what,
        number(figure.ours_median()),
        figure.unit,
        runs(&figure.ours),
        baseline,
        ratio,
        goal(figure),
        if figure.met() { "met" } else { "**not met**" }
    )
}

impl Report {
    pub fn new(settings: &Settings, seed_secs: f64, results: Results) -> Report {
        let (cores, memory) = machine();
        let mut text = String::new();
        let _ = writeln!(text, "# Benchmarks\n");
        let _ = writeln!(
            text,
            "Written by `countersign-bench` (crate `bench/`); run it again with the command below. \
             Each side of a benchmark runs {} time(s) for {} s with {} concurrent connections, our side and its \
             baseline one after the other; a figure is the median of its runs (the runs follow in parentheses).\n",
            settings.repetitions, settings.duration, settings.connections
        );
        let _ = writeln!(text, "| | |\n| --- | --- |");
        let _ = writeln!(
            text,
            "| date | {} |",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
        );
        let _ = writeln!(text, "| machine | {cores}, {memory} memory |");
        let _ = writeln!(
            text,
            "| data set | {} tenants with the approver function, each with 200 keys, 50 cylinders, 5 approvers, \
             200 requests in mixed states and {} events ({} events in all); {} tenants with automatic collection (B5) |",
            results.tenants,
            results.events / (results.tenants.max(1) as u64),
            results.events,
            settings.auto_tenants()
        );
        if seed_secs > 0.0 {
            let _ = writeln!(text, "| seeding | {seed_secs:.0} s |");
        }
        let _ = writeln!(
            text,
            "| servers | `{}` (`countersign serve`, pool of 16 database connections) on PostgreSQL and Redis; the load generator, the database and Redis run on the same machine |",
            settings.server.display()
        );
        if let Some(commit) = commit() {
            let _ = writeln!(text, "| commit | {commit} |");
        }
        text.push('\n');
        let _ = writeln!(text, "## Figures\n");
        let _ = writeln!(
            text,
            "| | figure | ours (runs) | baseline (runs) | ratio | goal | |"
        );
        let _ = writeln!(text, "| --- | --- | --- | --- | --- | --- | --- |");
        for figure in &results.figures {
            text.push_str(&row(figure));
        }
        let _ = writeln!(text, "\nBaselines:\n");
        for figure in results
            .figures
            .iter()
            .filter(|f| !f.baseline_what.is_empty())
        {
            let _ = writeln!(text, "- {}: {}", figure.bench, figure.baseline_what);
        }
        if !results.notes.is_empty() {
            let _ = writeln!(text, "\nNotes:\n");
            for note in &results.notes {
                let _ = writeln!(text, "- {note}");
            }
        }
        // The profiles behind the figures, written by hand after a run.
        if let Ok(analysis) = std::fs::read_to_string(analysis_path()) {
            let _ = writeln!(text, "\n{}", analysis.trim_end());
        }
        let _ = writeln!(text, "\n## Commands\n");
        let _ = writeln!(
            text,
            "The whole run:\n\n```sh\n{}\n```\n",
            settings.command_line
        );
        let _ = writeln!(text, "The baselines it ran:\n\n```sh");
        for command in &results.commands {
            let _ = writeln!(text, "{command}");
        }
        let _ = writeln!(text, "```");
        Report { text, results }
    }

    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(path, &self.text)?;
        Ok(())
    }
}
