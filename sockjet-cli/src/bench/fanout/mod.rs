//! `--fanout N`: one publisher, N subscribers, and a server that sends every message it
//! receives to every connection (`sockjet serve --broadcast`, or a peer's broadcast
//! server).
//!
//! The publisher sends `--size`-byte messages, each starting with a 16-character head (its
//! sequence number and send time, in characters valid in text messages too). Closed loop
//! (`--depth K`): K messages in flight, and one more each time one ends. Open loop
//! (`--rate R`): R messages a second on a schedule. A message's fan-out ends when every
//! subscriber has received it, or after `--fanout-timeout` (2 s by default): then the
//! subscribers that did not get it count as missing deliveries (a server may drop
//! messages for a receiver that does not keep up, as sockjet's broadcast does). One that
//! arrives after all is a late delivery: counted as a delivery (the server did the work)
//! and as missing. A server slower than the timeout is measured badly: each message given
//! up on lets the publisher send another while the server still works on the old one, so
//! give a depth (or rate) whose fan-out takes well under the timeout.
//!
//! Latency is per delivery: from the publisher's send time (open loop: the scheduled
//! time) to a subscriber's read, on the same clock (one process). The fan-out completion
//! time of a message is from its send to the last subscriber's read.
//!
//! Before the warmup, the publisher checks that every subscriber receives broadcasts (a
//! server may add a connection to its receivers a little after the handshake): it sends
//! probes, one every 500 ms, until one reaches everybody (at most 10 s).
//!
//! Files: `board.rs` the messages in flight shared by all, `publisher.rs` and
//! `subscriber.rs` the two kinds of connection.

mod board;
mod publisher;
mod subscriber;

use std::{
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use tokio::{
    sync::{oneshot, watch},
    task::JoinSet,
};

use self::{
    board::Board,
    publisher::{MAX_PROBES, PublishPlan, Published, SUBSCRIBE_TIMEOUT, publish},
    subscriber::{SubscriberTotals, subscribe},
};
use super::{
    CLOSE_TIMEOUT, GRACE, HANDSHAKE_TIMEOUT, Settings,
    dial::{Target, dial},
    frames,
    open::{OpenPlan, open_all},
    phases::{Interrupt, Window, join_until},
    progress::{Progress, Status, live_status},
    report::{self, FanoutReport, Percentiles, Report, common_report},
    stats::{ErrorKind, SharedStats},
};
use crate::Failure;

pub(crate) use self::board::{HEAD_LEN, MAX_SUBSCRIBERS};

/// Runs the fan-out: opens the subscribers and the publisher, checks that broadcasts
/// reach every subscriber, warms up, measures, closes, and reports.
pub(crate) async fn run(settings: &Settings) -> Result<Report, Failure> {
    let args = &settings.args;
    let subscribers_asked = args.fanout.unwrap_or(1);
    let stats = SharedStats::new();
    let mut interrupt = Interrupt::listen();

    // The publisher's server: the same as the subscribers', unless --publisher-url names
    // another (one of several processes sharing rooms, e.g. through Redis).
    let publisher_target = match &args.publisher_url {
        Some(url) => Arc::new(Target::resolve(url).await?),
        None => Arc::clone(&settings.target),
    };

    // The subscribers first, then the publisher (number `subscribers_asked`).
    let plan = OpenPlan {
        target: Arc::clone(&settings.target),
        count: subscribers_asked,
        deflate: None,
        timeout: HANDSHAKE_TIMEOUT,
        share: None,
    };
    let (connections, counts) = open_all(plan, settings, &stats, &mut interrupt).await?;
    let publisher_index = subscribers_asked;
    let source = settings
        .target
        .source_for(publisher_index, subscribers_asked + 1);
    let publisher_connection = match dial(&publisher_target, source, None, HANDSHAKE_TIMEOUT).await
    {
        Ok(opened) => {
            stats
                .recorder(publisher_index)
                .connect_time(opened.connect_time);
            opened
        }
        Err(error) => {
            let why = error.to_string();
            stats.connect_failure(error.reason(), why.clone());
            return Err(Failure::new(format!(
                "cannot open the publisher's connection to {}: {why}",
                publisher_target.url
            )));
        }
    };

    let subscribers = connections.len();
    let interval = args
        .rate
        .map(|rate| {
            Duration::try_from_secs_f64(1.0 / rate)
                .map_err(|_| Failure::new(format!("--rate {rate} is too low")))
        })
        .transpose()?
        .map(|interval| interval.max(Duration::from_micros(1)));
    let timeout = args.fanout_timeout;
    // Open loop: room for every message that can be in flight within the timeout.
    let in_flight = match args.rate {
        Some(rate) => (rate * timeout.as_secs_f64() * 1.25).ceil() as usize + 16,
        None => args.depth,
    };
    // Probes of the subscription check may still be out when the messages start.
    let board = Arc::new(Board::new(in_flight.min(1 << 22) + MAX_PROBES, subscribers));
    let (stop, stopped) = watch::channel(false);
    let totals = Arc::new(SubscriberTotals::default());
    let mut tasks = JoinSet::new();
    for (index, opened) in connections {
        tasks.spawn(subscribe(
            opened,
            Arc::clone(&board),
            stats.recorder(index),
            stopped.clone(),
            Arc::clone(&totals),
            CLOSE_TIMEOUT,
        ));
    }
    let (subscribed_sender, subscribed) = oneshot::channel();
    let (report_sender, published) = oneshot::channel();
    tasks.spawn(publish(
        publisher_connection,
        Arc::clone(&board),
        PublishPlan {
            kind: settings.kind,
            payload: frames::payload_variant(settings.kind, args.size(), 0),
            depth: args.rate.is_none().then_some(args.depth),
            interval,
            timeout,
            warmup: args.warmup,
            duration: args.duration,
            close_timeout: CLOSE_TIMEOUT,
        },
        stats.recorder(publisher_index),
        stopped,
        subscribed_sender,
        report_sender,
    ));

    // Every subscriber must receive broadcasts before the clock starts.
    let progress = Progress::start(settings.display, {
        let board = Arc::clone(&board);
        move || Status {
            line: format!(
                "checking that broadcasts reach all {} subscribers",
                report::group(board.live() as u64)
            ),
            timeline: None,
        }
    });
    let check = tokio::select! {
        result = subscribed => result.unwrap_or_else(|_| Err("the publisher ended".to_owned())),
        () = tokio::time::sleep(SUBSCRIBE_TIMEOUT + HANDSHAKE_TIMEOUT) => {
            Err("no answer from the publisher".to_owned())
        }
        () = interrupt.wait() => Err("interrupted".to_owned()),
    };
    progress.finish();
    let checked = check.and_then(|()| {
        board
            .schedule()
            .copied()
            .ok_or_else(|| "the publisher did not start the clock".to_owned())
    });
    let schedule = match checked {
        Ok(schedule) => schedule,
        Err(why) => {
            let _ = stop.send(true);
            join_until(
                &mut tasks,
                Instant::now() + CLOSE_TIMEOUT + GRACE,
                &mut interrupt,
            )
            .await;
            return Err(Failure::new(format!(
                "broadcasts do not reach every subscriber: {why}"
            )));
        }
    };

    let progress = Progress::start(
        settings.display,
        live_status(
            Arc::clone(&stats),
            "deliveries/s",
            schedule.start,
            schedule.measure_start,
            schedule.end,
        ),
    );
    let window = Window::wait(
        schedule.measure_start,
        schedule.end,
        args.server_pid,
        &mut interrupt,
    )
    .await;
    let _ = stop.send(true);
    let published = tokio::time::timeout(CLOSE_TIMEOUT, published)
        .await
        .ok()
        .and_then(Result::ok);
    join_until(
        &mut tasks,
        Instant::now() + CLOSE_TIMEOUT + GRACE,
        &mut interrupt,
    )
    .await;
    progress.finish();

    let unrecognized = totals.unrecognized.load(Ordering::Relaxed);
    if unrecognized > 0 {
        stats.errors(ErrorKind::UnexpectedMessage, unrecognized, || {
            format!("a subscriber received a message without the publisher's {HEAD_LEN}-byte head")
        });
    }
    // The subscribers' counts, and the publisher.
    let mut report = common_report(
        settings,
        &stats,
        subscribers_asked + 1,
        Some(&counts),
        &window,
    );
    report.connections.opened += 1;
    let deliveries = stats.totals().latency.len();
    report.latency_us = Percentiles::of(&stats.totals().latency);
    report.fanout = Some(fanout_report(
        subscribers,
        published.as_ref(),
        deliveries,
        totals.late.load(Ordering::Relaxed),
        timeout,
        &window,
    ));
    report.server_cpu_per_delivery_us = window.server_cpu_per_op_us(deliveries);
    Ok(report)
}

/// The fan-out's part of the report.
fn fanout_report(
    subscribers: usize,
    published: Option<&Published>,
    deliveries: u64,
    late: u64,
    timeout: Duration,
    window: &Window,
) -> FanoutReport {
    let seconds = window.seconds();
    let per_second = |count: u64| {
        if seconds > 0.0 {
            super::round(count as f64 / seconds, 1)
        } else {
            0.0
        }
    };
    let completed = published.map_or(0, |published| published.completed);
    let timed_out = published.map_or(0, |published| published.timed_out);
    FanoutReport {
        subscribers: subscribers as u64,
        messages_sent: published.map_or(0, |published| published.sent),
        messages_completed: completed,
        messages_timed_out: timed_out,
        messages_per_s: per_second(completed + timed_out),
        deliveries,
        deliveries_per_s: per_second(deliveries),
        missing_deliveries: published.map_or(0, |published| published.missing),
        late_deliveries: late,
        completion_us: published.and_then(|published| Percentiles::of(&published.completion)),
        timeout_s: timeout.as_secs_f64(),
        probes: published.map_or(0, |published| published.probes),
        subscribe_s: published
            .and_then(|published| published.subscribe_time)
            .map(|time| super::round(time.as_secs_f64(), 3)),
        publisher_report: published.is_some(),
    }
}
