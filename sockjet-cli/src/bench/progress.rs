//! The live display: a progress bar on a terminal, else one status line a second on
//! stderr, or nothing with `-q`.

use std::{
    io::{self, IsTerminal as _},
    sync::Arc,
    time::{Duration, Instant},
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::task::JoinHandle;

use super::{
    open::OpenCounts,
    report::{format_micros, group},
    stats::SharedStats,
};

/// How often the status is computed (and, without a terminal, printed).
const STATUS_INTERVAL: Duration = Duration::from_secs(1);

/// How often the bar moves between two status updates.
const BAR_INTERVAL: Duration = Duration::from_millis(100);

/// What the display shows at one moment.
#[derive(Clone, Debug, Default)]
pub(crate) struct Status {
    /// The status line, e.g. `measuring: 123,456 msg/s, p99 1.20 ms`.
    pub(crate) line: String,
    /// Time spent and time planned, for the bar; `None` while that is unknown (opening).
    pub(crate) timeline: Option<(Duration, Duration)>,
}

/// Where the display goes.
#[derive(Clone, Copy, Debug, Eq, PartialEq)]
pub(crate) enum Display {
    /// A progress bar on the terminal.
    Bar,
    /// A line a second on stderr, for logs and pipes.
    Lines,
    /// Nothing (`-q`).
    Quiet,
}

impl Display {
    /// The display that suits stderr.
    pub(crate) fn for_stderr(quiet: bool) -> Self {
        match (quiet, io::stderr().is_terminal()) {
            (true, _) => Self::Quiet,
            (false, true) => Self::Bar,
            (false, false) => Self::Lines,
        }
    }
}

/// A running display; [`finish`](Self::finish) removes it before the summary.
#[derive(Debug)]
pub(crate) struct Progress {
    task: Option<JoinHandle<()>>,
    bar: Option<ProgressBar>,
}

impl Progress {
    /// Starts showing what `status` returns, every second. `status` is called once a
    /// second only (it may reset counters), from a runtime task.
    pub(crate) fn start(
        display: Display,
        mut status: impl FnMut() -> Status + Send + 'static,
    ) -> Self {
        if display == Display::Quiet {
            return Self {
                task: None,
                bar: None,
            };
        }
        let bar = (display == Display::Bar).then(|| {
            let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template("{bar:30.cyan/blue} {elapsed:>4} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        let shown = bar.clone();
        let task = tokio::spawn(async move {
            let mut ticks = tokio::time::interval(BAR_INTERVAL);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let ticks_per_status = (STATUS_INTERVAL.as_millis() / BAR_INTERVAL.as_millis()) as u32;
            let mut tick = 0u32;
            let mut timeline = None;
            // The first tick is immediate: skip it, nothing has happened yet.
            ticks.tick().await;
            loop {
                ticks.tick().await;
                tick += 1;
                let new_status = (tick % ticks_per_status == 0).then(&mut status);
                match (&shown, new_status) {
                    (Some(bar), new_status) => {
                        if let Some(new_status) = new_status {
                            bar.set_message(new_status.line);
                            timeline = new_status.timeline.map(|(spent, planned)| {
                                (tokio::time::Instant::now() - spent, planned)
                            });
                        }
                        // Between two status updates the bar follows the clock.
                        if let Some((started, planned)) = timeline {
                            bar.set_length(planned.as_millis().max(1) as u64);
                            bar.set_position(started.elapsed().min(planned).as_millis() as u64);
                        }
                    }
                    (None, Some(new_status)) => eprintln!("sockjet bench: {}", new_status.line),
                    (None, None) => {}
                }
            }
        });
        Self {
            task: Some(task),
            bar,
        }
    }

    /// Stops the display and clears the bar.
    pub(crate) fn finish(mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// The status line while connections open.
pub(crate) fn opening_status(counts: &OpenCounts, requested: usize) -> Status {
    let failed = match counts.failed() {
        0 => String::new(),
        failed => format!(", {} failed", group(failed as u64)),
    };
    Status {
        line: format!(
            "opening connections: {} of {} open{failed}",
            group(counts.opened() as u64),
            group(requested as u64)
        ),
        timeline: None,
    }
}

/// The status line of a run: its phase, completions (echoes or cycles) per second and
/// their p99 since the last status, and errors so far.
pub(crate) fn live_status(
    stats: Arc<SharedStats>,
    unit: &'static str,
    start: Instant,
    measure_start: Instant,
    end: Instant,
) -> impl FnMut() -> Status + Send + 'static {
    let mut last = Instant::now();
    move || {
        let now = Instant::now();
        let live = stats.take_live();
        let rate = live.len() as f64 / (now - last).as_secs_f64().max(1e-3);
        last = now;
        let phase = if now < measure_start {
            "warmup"
        } else if now < end {
            "measuring"
        } else {
            "closing"
        };
        let p99 = match live.is_empty() {
            true => "-".to_owned(),
            false => format_micros(live.value_at_quantile(0.99)),
        };
        let errors = match stats.outcomes().errors.values().sum::<u64>() {
            0 => String::new(),
            errors => format!(", {} errors", group(errors)),
        };
        Status {
            line: format!(
                "{phase}: {} {unit}, p99 {p99}{errors}",
                group(rate.round() as u64)
            ),
            timeline: Some((now - start, end - start)),
        }
    }
}
