//! `--idle N`: many open connections doing nothing, to measure what each costs the
//! server (with `--server-pid`, its resident memory before and after).

use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use sockjet_proto::{MaskKeys as _, OsRandomMaskKeys};
use tokio::sync::watch;

use super::{
    CLOSE_TIMEOUT, GRACE, HANDSHAKE_TIMEOUT, Settings,
    dial::Opened,
    notice,
    open::{OpenPlan, spawn_openers},
    os,
    phases::{Interrupt, Window, all_opened, join_until},
    progress::{Progress, Status, opening_status},
    report::{self, Idle, Report, common_report},
    session::{ReadOutcome, Session, eof_failure},
    stats::{ErrorKind, Recorder, SharedStats},
};
use crate::{Failure, io_message};

/// Time for the server's memory to settle after the last connection opened, before its
/// resident size is read.
const SETTLE: Duration = Duration::from_secs(1);

/// Opens the idle connections, reads the server's memory before and after, holds them for
/// `--duration`, closes them, and reports.
pub(crate) async fn run(settings: &Settings) -> Result<Report, Failure> {
    let args = &settings.args;
    let requested = args.connections();
    let stats = SharedStats::new();
    let mut interrupt = Interrupt::listen();
    let server_rss = |pid: u32| {
        os::resident_bytes(pid).map_err(|error| {
            format!(
                "cannot read the memory of process {pid}: {}",
                io_message(&error)
            )
        })
    };
    let rss_before = args
        .server_pid
        .map(server_rss)
        .transpose()
        .map_err(Failure::new)?;

    let (stop, stopped) = watch::channel(false);
    let lost = Arc::new(AtomicUsize::new(0));
    let plan = OpenPlan {
        target: Arc::clone(&settings.target),
        count: requested,
        deflate: settings.deflate(),
        timeout: HANDSHAKE_TIMEOUT,
    };
    let (mut holders, counts) = spawn_openers(plan, &stats, {
        let (stats, lost) = (Arc::clone(&stats), Arc::clone(&lost));
        move |index, opened| {
            hold(
                opened,
                stopped.clone(),
                stats.recorder(index),
                Arc::clone(&lost),
                CLOSE_TIMEOUT,
            )
        }
    });
    let progress = Progress::start(settings.display, {
        let counts = Arc::clone(&counts);
        move || opening_status(&counts, requested)
    });
    let all_open = all_opened(&counts, requested, settings, &stats, &mut interrupt).await;
    progress.finish();
    if let Err(failure) = all_open {
        holders.abort_all();
        return Err(failure);
    }

    let opened_at = Instant::now();
    let hold_end = opened_at + args.duration.max(SETTLE);
    let progress = Progress::start(settings.display, {
        let (counts, lost) = (Arc::clone(&counts), Arc::clone(&lost));
        move || {
            let held = counts.opened().saturating_sub(lost.load(Ordering::Relaxed));
            Status {
                line: format!("holding {} idle connections", report::group(held as u64)),
                timeline: Some((opened_at.elapsed(), hold_end - opened_at)),
            }
        }
    });
    let mut rss_after = None;
    tokio::select! {
        () = tokio::time::sleep(SETTLE) => {
            rss_after = match args.server_pid.map(server_rss).transpose() {
                Ok(rss) => rss,
                // The server may have died of the load: say so, and report the rest.
                Err(why) => {
                    notice(settings.display, &why);
                    None
                }
            };
        }
        () = interrupt.wait() => {}
    }
    // The server's memory was read above; its CPU time while idle is not measured (the
    // window started before the settling pause).
    let window = Window::wait(opened_at, hold_end, None, &mut interrupt).await;
    let held = counts.opened().saturating_sub(lost.load(Ordering::Relaxed));
    let _ = stop.send(true);
    join_until(
        &mut holders,
        Instant::now() + CLOSE_TIMEOUT + GRACE,
        &mut interrupt,
    )
    .await;
    progress.finish();

    let mut report = common_report(settings, &stats, requested, Some(&counts), &window);
    report.server_rss_bytes = rss_after;
    let opened = counts.opened() as f64;
    report.idle = Some(Idle {
        held: held as u64,
        server_rss_before_bytes: rss_before,
        server_rss_after_bytes: rss_after,
        server_rss_per_connection_bytes: rss_before
            .zip(rss_after)
            .map(|(before, after)| super::round((after as f64 - before as f64) / opened, 1)),
    });
    Ok(report)
}

/// Holds an idle connection open, answering pings, until `stop` turns true; then closes
/// it with 1000. `lost` counts connections that ended before that.
pub(crate) async fn hold(
    opened: Opened,
    mut stop: watch::Receiver<bool>,
    mut recorder: Recorder,
    lost: Arc<AtomicUsize>,
    close_timeout: Duration,
) {
    let mask = OsRandomMaskKeys::default().next_key();
    let mut session = Session::new(opened, None, mask);
    let failed = loop {
        if let Err(error) = session.write_pending() {
            break Some((ErrorKind::Io, crate::io_message(&error)));
        }
        let ready = tokio::select! {
            ready = session.ready() => ready,
            // An error means the sender is gone: the run is over too.
            _ = stop.wait_for(|stop| *stop) => break None,
        };
        let ready = match ready {
            Ok(ready) => ready,
            Err(error) => break Some((ErrorKind::Io, crate::io_message(&error))),
        };
        if !ready.is_readable() {
            continue;
        }
        // Idle connections expect nothing but pings; a server that sends messages
        // (a broadcast, a greeting) is not wrong, so they are read and ignored.
        match session.read_available(&mut |_| {}) {
            Err(error) => break Some((error.kind(), error.to_string())),
            Ok(ReadOutcome::Eof) => break Some(eof_failure()),
            Ok(ReadOutcome::Open) => {}
        }
        if let Some(failed) = session.closed_by_server(&recorder) {
            break Some(failed);
        }
    };
    if failed.is_some() {
        lost.fetch_add(1, Ordering::Relaxed);
    }
    session.end(failed, close_timeout, &mut recorder).await;
}
