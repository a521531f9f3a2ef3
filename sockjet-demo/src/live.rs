//! The live data stream: simulated sensors, several series sampled 25 times a second and
//! sent to every viewer at once (one broadcast per sample, encoded once for all).
//!
//! Server to client: `{"type":"sample","seq":n,"t":ms,"values":{"temperature":21.3,...}}`.
//! Client to server: `{"type":"ping","id":n}`, answered `{"type":"pong","id":n}` to that
//! viewer only, so the page can show its round-trip time; anything else gets an `error`.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::Deserialize;
use sockjet::{Connection, Sender};

use crate::json_error;

/// Samples per second.
pub const SAMPLES_PER_SECOND: u64 = 25;

/// The series and their starting values, bounds and volatility.
const SERIES: [(&str, f64, f64, f64, f64); 4] = [
    ("temperature", 21.0, 15.0, 30.0, 0.15),
    ("humidity", 45.0, 20.0, 80.0, 0.6),
    ("pressure", 1013.0, 990.0, 1030.0, 0.4),
    ("load", 0.5, 0.0, 1.0, 0.03),
];

/// A random walk per series, kept within its bounds.
#[derive(Debug)]
pub struct Sensors {
    values: [f64; SERIES.len()],
    rng: fastrand::Rng,
}

impl Sensors {
    /// Sensors at their starting values.
    pub fn new(seed: u64) -> Self {
        Self {
            values: SERIES.map(|(_, start, ..)| start),
            rng: fastrand::Rng::with_seed(seed),
        }
    }

    /// The next sample: each series moves by up to its volatility.
    pub fn sample(&mut self) -> serde_json::Map<String, serde_json::Value> {
        let mut values = serde_json::Map::new();
        for (value, (name, _, low, high, step)) in self.values.iter_mut().zip(SERIES) {
            *value = (*value + (self.rng.f64() * 2.0 - 1.0) * step).clamp(low, high);
            values.insert(name.to_owned(), ((*value * 100.0).round() / 100.0).into());
        }
        values
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
enum ViewerMessage {
    Ping { id: u64 },
}

/// The stream: its viewers, fed by a sampling task.
#[derive(Clone, Debug, Default)]
pub struct Live {
    /// Copy-on-write: the sampling task takes the current list without holding the lock
    /// while it sends.
    viewers: Arc<Mutex<Arc<[Sender]>>>,
}

impl Live {
    /// Starts sampling on the current runtime.
    pub fn start() -> Self {
        let live = Self::default();
        let viewers = live.viewers.clone();
        tokio::spawn(async move {
            let mut sensors = Sensors::new(fastrand::u64(..));
            let mut ticker =
                tokio::time::interval(Duration::from_millis(1000 / SAMPLES_PER_SECOND));
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            for seq in 0u64.. {
                ticker.tick().await;
                let now = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis() as u64;
                let sample = serde_json::json!({
                    "type": "sample", "seq": seq, "t": now, "values": sensors.sample(),
                });
                let current = viewers.lock().expect("viewers lock").clone();
                if !current.is_empty() {
                    sockjet::broadcast(current.iter(), sample.to_string());
                }
            }
        });
        live
    }

    /// Runs one viewer's connection.
    pub async fn watch(&self, mut ws: Connection) {
        let me = ws.sender();
        self.update(|viewers| viewers.iter().cloned().chain([me.clone()]).collect());
        while let Ok(Some(message)) = ws.recv().await {
            let reply = match message.as_text().map(serde_json::from_str::<ViewerMessage>) {
                Some(Ok(ViewerMessage::Ping { id })) => {
                    serde_json::json!({ "type": "pong", "id": id }).to_string()
                }
                Some(Err(error)) => json_error(&format!("bad message: {error}")),
                None => json_error("binary messages are not part of this stream"),
            };
            if ws.send(reply).await.is_err() {
                break;
            }
        }
        let id = me.id();
        self.update(|viewers| viewers.iter().filter(|v| v.id() != id).cloned().collect());
    }

    /// Viewers watching now.
    pub fn viewers(&self) -> usize {
        self.viewers.lock().expect("viewers lock").len()
    }

    fn update(&self, change: impl FnOnce(&[Sender]) -> Arc<[Sender]>) {
        let mut viewers = self.viewers.lock().expect("viewers lock");
        *viewers = change(&viewers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_stay_within_bounds_and_name_every_series() {
        let mut sensors = Sensors::new(42);
        for _ in 0..10_000 {
            let sample = sensors.sample();
            assert_eq!(sample.len(), SERIES.len());
            for (name, _, low, high, _) in SERIES {
                let value = sample[name].as_f64().unwrap();
                assert!((low..=high).contains(&value), "{name} = {value}");
            }
        }
    }
}
