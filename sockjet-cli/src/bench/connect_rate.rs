//! `--connect-rate`: how fast the server accepts, upgrades and closes connections.
//!
//! Each worker loops over one cycle: TCP connect, opening handshake, close 1000, the
//! server's close frame, the server's end of TCP. The cycle's latency is recorded from the
//! start of the connect to the end of TCP.

use std::{
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use sockjet_proto::{DeflateConfig, MaskKeys as _, OsRandomMaskKeys};
use tokio::task::JoinSet;

use super::{
    CLOSE_TIMEOUT, GRACE, HANDSHAKE_TIMEOUT, Settings,
    dial::{Target, dial},
    phases::{Interrupt, Window, join_until},
    progress::{Progress, live_status},
    report::{Cycles, Percentiles, Report, common_report},
    session::Session,
    stats::{ErrorKind, Recorder, SharedStats},
};
use crate::Failure;

/// Runs the workers through warmup and measurement, and reports.
pub(crate) async fn run(settings: &Settings) -> Result<Report, Failure> {
    let args = &settings.args;
    let stats = SharedStats::new();
    let mut interrupt = Interrupt::listen();
    let start = Instant::now();
    let measure_start = start + args.warmup;
    let end = measure_start + args.duration;
    let plan = Arc::new(CyclePlan {
        target: Arc::clone(&settings.target),
        deflate: settings.deflate(),
        workers: args.conns,
        connect_timeout: HANDSHAKE_TIMEOUT,
        close_timeout: CLOSE_TIMEOUT,
        measure_start,
        end,
        negotiated: AtomicU64::new(0),
    });
    let mut workers = JoinSet::new();
    for index in 0..args.conns {
        workers.spawn(cycle(index, Arc::clone(&plan), stats.recorder(index)));
    }
    let progress = Progress::start(
        settings.display,
        live_status(Arc::clone(&stats), "cycles/s", start, measure_start, end),
    );
    let window = Window::wait(measure_start, end, args.server_pid, &mut interrupt).await;
    if window.interrupted {
        workers.abort_all();
    }
    // A cycle started just before the end may take both timeouts.
    let deadline = end + HANDSHAKE_TIMEOUT + CLOSE_TIMEOUT + GRACE;
    join_until(&mut workers, deadline, &mut interrupt).await;
    progress.finish();

    let mut report = common_report(settings, &stats, 0, None, &window);
    if report.connections.opened == 0 {
        let why = report
            .connections
            .first_failure
            .clone()
            .unwrap_or_else(|| "no connection opened".to_owned());
        return Err(Failure::new(format!(
            "cannot connect to {}: {why}",
            settings.target.url
        )));
    }
    let negotiated = plan.negotiated.load(Ordering::Relaxed);
    report.compression.negotiated_connections = negotiated as usize;
    report.compression.negotiated = negotiated == report.connections.opened;
    let totals = stats.totals();
    let completed = totals.latency.len();
    let seconds = window.seconds();
    report.cycles = Some(Cycles {
        completed,
        per_s: if seconds > 0.0 {
            super::round(completed as f64 / seconds, 1)
        } else {
            0.0
        },
    });
    report.latency_us = Percentiles::of(&totals.latency);
    report.server_cpu_per_cycle_us = window.server_cpu_per_op_us(completed);
    Ok(report)
}

/// Pause after a failed cycle, so that a refusing server is not hammered in a tight loop
/// (and the error count stays meaningful).
const RETRY_PAUSE: Duration = Duration::from_millis(10);

/// What every worker of a connect-rate run does.
#[derive(Debug)]
pub(crate) struct CyclePlan {
    /// The server.
    pub(crate) target: Arc<Target>,
    /// permessage-deflate to offer, if any: negotiating it is part of the server's work.
    pub(crate) deflate: Option<DeflateConfig>,
    /// Number of workers, for spreading them over source addresses.
    pub(crate) workers: usize,
    /// Longest connect and handshake.
    pub(crate) connect_timeout: Duration,
    /// Longest closing handshake.
    pub(crate) close_timeout: Duration,
    /// Start of the measurement window.
    pub(crate) measure_start: Instant,
    /// End of the run: no cycle starts after it.
    pub(crate) end: Instant,
    /// Connections on which the server accepted permessage-deflate.
    pub(crate) negotiated: AtomicU64,
}

/// Runs cycles on worker number `index` until the end of the plan.
pub(crate) async fn cycle(index: usize, plan: Arc<CyclePlan>, mut recorder: Recorder) {
    let mut masks = OsRandomMaskKeys::default();
    let source = plan.target.source_for(index, plan.workers);
    loop {
        let start = Instant::now();
        if start >= plan.end {
            break;
        }
        let opened = match dial(
            &plan.target,
            source,
            plan.deflate.as_ref(),
            plan.connect_timeout,
        )
        .await
        {
            Ok(opened) => opened,
            Err(error) => {
                let stats = recorder.shared();
                stats.error(ErrorKind::Connect, || error.to_string());
                stats.connect_failure(error.reason(), error.to_string());
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        recorder.connect_time(opened.connect_time);
        if opened.compression.is_some() {
            plan.negotiated.fetch_add(1, Ordering::Relaxed);
        }
        let mut session = Session::new(opened, None, masks.next_key());
        match session.close(1000, plan.close_timeout).await {
            Ok(code) => {
                let done = Instant::now();
                recorder.shared().close_code(code);
                // A cycle counts in the window it ends in, like an echo.
                let measured = done >= plan.measure_start && done < plan.end;
                recorder.latency(done - start, measured, done);
            }
            Err(error) => recorder.shared().error(error.kind(), || error.to_string()),
        }
        recorder.pings_answered(session.pings());
    }
}
