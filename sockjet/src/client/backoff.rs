//! [`Backoff`]: the delays between reconnection attempts.

use std::time::Duration;

/// Exponential backoff between reconnection attempts, with Python `websockets`'
/// defaults (its `BACKOFF_*` constants).
///
/// The delays of a series of failures are:
/// 1. a random delay between 0 and [`initial_delay`](Self::initial_delay) (5 s, or
///    [`max_delay`](Self::max_delay) if that is shorter): RFC 6455
///    §7.2.3 asks that the first reconnection after an abnormal closure be delayed "by a
///    random amount of time", so that clients dropped together by a server restart do
///    not all come back at once;
/// 2. then [`min_delay`](Self::min_delay) (3.1 s), multiplied by
///    [`factor`](Self::factor) (1.618) after each further failure,
/// 3. up to [`max_delay`](Self::max_delay) (90 s), which then repeats.
///
/// The series starts over after a connection that stayed open at least
/// [`reset_after`](Self::reset_after) (60 s), so that a server that accepts connections
/// and closes them at once still sees growing delays.
///
/// ```
/// use std::time::Duration;
/// use sockjet::Backoff;
/// let backoff = Backoff::default()
///     .initial_delay(Duration::ZERO)
///     .min_delay(Duration::from_secs(1))
///     .factor(2.0)
///     .max_delay(Duration::from_secs(5));
/// let delays: Vec<u64> = backoff.delays().take(6).map(|d| d.as_secs()).collect();
/// assert_eq!(delays, [0, 1, 2, 4, 5, 5]);
/// ```
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// Upper bound of the random first delay. Default: 5 s.
    pub initial_delay: Duration,
    /// The second delay, from which the delays grow. Default: 3.1 s.
    pub min_delay: Duration,
    /// The longest delay. Default: 90 s.
    pub max_delay: Duration,
    /// How much each delay grows over the one before. Default: 1.618.
    pub factor: f64,
    /// A connection open at least this long starts the series over. Default: 60 s.
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_secs(5),
            min_delay: Duration::from_millis(3100),
            max_delay: Duration::from_secs(90),
            factor: 1.618,
            reset_after: Duration::from_secs(60),
        }
    }
}

impl Backoff {
    /// Sets [`initial_delay`](Self::initial_delay).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = sockjet::Backoff::default().initial_delay(Duration::from_secs(1));
    /// assert_eq!(b.initial_delay, Duration::from_secs(1));
    /// ```
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// Sets [`min_delay`](Self::min_delay).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = sockjet::Backoff::default().min_delay(Duration::from_millis(100));
    /// assert_eq!(b.min_delay, Duration::from_millis(100));
    /// ```
    pub fn min_delay(mut self, delay: Duration) -> Self {
        self.min_delay = delay;
        self
    }

    /// Sets [`max_delay`](Self::max_delay).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = sockjet::Backoff::default().max_delay(Duration::from_secs(30));
    /// assert_eq!(b.max_delay, Duration::from_secs(30));
    /// ```
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Sets [`factor`](Self::factor); values below 1 are taken as 1 (constant delays).
    ///
    /// ```
    /// let b = sockjet::Backoff::default().factor(2.0);
    /// assert_eq!(b.factor, 2.0);
    /// ```
    pub fn factor(mut self, factor: f64) -> Self {
        self.factor = factor;
        self
    }

    /// Sets [`reset_after`](Self::reset_after).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let b = sockjet::Backoff::default().reset_after(Duration::from_secs(10));
    /// assert_eq!(b.reset_after, Duration::from_secs(10));
    /// ```
    pub fn reset_after(mut self, duration: Duration) -> Self {
        self.reset_after = duration;
        self
    }

    /// The delays of a series of failed attempts, endless.
    ///
    /// ```
    /// let mut delays = sockjet::Backoff::default().delays();
    /// assert!(delays.next().unwrap().as_secs_f64() <= 5.0);
    /// assert_eq!(delays.next().unwrap().as_millis(), 3100);
    /// ```
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send + 'static {
        Delays {
            backoff: self.clone(),
            next: None,
        }
    }
}

/// The iterator of [`Backoff::delays`].
struct Delays {
    backoff: Backoff,
    /// The next delay after the random first one; `None` before the first.
    next: Option<Duration>,
}

impl Iterator for Delays {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        let backoff = &self.backoff;
        let Some(delay) = self.next else {
            self.next = Some(backoff.min_delay.min(backoff.max_delay));
            let bound = backoff.initial_delay.min(backoff.max_delay);
            return Some(bound.mul_f64(random_fraction()));
        };
        let factor = if backoff.factor.is_finite() {
            backoff.factor.max(1.0)
        } else {
            1.0
        };
        let grown =
            Duration::try_from_secs_f64(delay.as_secs_f64() * factor).unwrap_or(backoff.max_delay);
        self.next = Some(grown.min(backoff.max_delay));
        Some(delay)
    }
}

/// A random number in `[0, 1)`; jitter needs no secrecy, so a failing OS source gives 0.5.
fn random_fraction() -> f64 {
    let mut bytes = [0; 8];
    match getrandom::fill(&mut bytes) {
        // The 53 high bits make an evenly spread f64 in [0, 1).
        Ok(()) => (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64,
        Err(_) => 0.5,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_by_the_factor_and_stop_at_the_maximum() {
        let backoff = Backoff::default();
        let delays: Vec<Duration> = backoff.delays().take(30).collect();
        assert!(delays[0] <= backoff.initial_delay);
        assert_eq!(delays[1], Duration::from_millis(3100));
        for pair in delays[1..].windows(2) {
            assert!(pair[1] >= pair[0], "{pair:?}");
            let ratio = pair[1].as_secs_f64() / pair[0].as_secs_f64();
            assert!(
                (ratio - 1.618).abs() < 1e-6 || pair[1] == backoff.max_delay,
                "{pair:?}"
            );
        }
        assert!(delays.iter().all(|delay| *delay <= backoff.max_delay));
        assert_eq!(delays[29], backoff.max_delay);
    }

    #[test]
    fn first_delays_are_spread() {
        let first: Vec<Duration> = (0..32)
            .map(|_| Backoff::default().delays().next().unwrap())
            .collect();
        assert!(first.iter().all(|delay| *delay < Duration::from_secs(5)));
        // 32 draws of a uniform 0..5 s are not all equal.
        assert!(first.iter().any(|delay| *delay != first[0]));
    }

    #[test]
    fn odd_factors_keep_delays_bounded() {
        for factor in [0.0, -3.0, f64::NAN, f64::INFINITY, 1e300] {
            let backoff = Backoff::default().factor(factor);
            for delay in backoff.delays().take(20) {
                assert!(delay <= backoff.max_delay, "{factor}: {delay:?}");
            }
        }
    }
}
