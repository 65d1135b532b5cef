//! When a failed delivery is tried again: the Standard Webhooks schedule (immediately, then
//! 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h), continued with 10-hour waits until about three
//! days have passed, each wait spread by ±10 % jitter so failures of many deliveries to one
//! endpoint do not come back in lockstep.

use std::time::Duration;

use rand::Rng;

/// Waits before attempts 2, 3, …: `RETRY_WAITS[n - 1]` follows attempt `n`.
pub const RETRY_WAITS: [Duration; 11] = [
    Duration::from_secs(5),
    Duration::from_secs(5 * 60),
    Duration::from_secs(30 * 60),
    Duration::from_secs(2 * 3600),
    Duration::from_secs(5 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
    Duration::from_secs(10 * 3600),
];

/// Attempts a delivery gets in all (the first one and every retry): 12, over about 2.8 days.
pub const MAX_ATTEMPTS: i32 = RETRY_WAITS.len() as i32 + 1;

/// Spread of each wait: ±10 %.
const JITTER: f64 = 0.1;

/// The wait after failed attempt `attempt` (1-based) before the next one, jittered; `None`
/// when that was the last attempt.
pub fn next_wait(attempt: i32) -> Option<Duration> {
    let base = RETRY_WAITS.get(usize::try_from(attempt).ok()?.checked_sub(1)?)?;
    let factor = 1.0 + rand::rng().random_range(-JITTER..=JITTER);
    Some(base.mul_f64(factor))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_follow_the_schedule_within_the_jitter_and_stop_after_three_days() {
        for (i, base) in RETRY_WAITS.iter().enumerate() {
            for _ in 0..50 {
                let wait = next_wait(i as i32 + 1).unwrap();
                assert!(
                    wait >= base.mul_f64(0.9) && wait <= base.mul_f64(1.1),
                    "{wait:?}"
                );
            }
        }
        assert_eq!(next_wait(MAX_ATTEMPTS), None);
        assert_eq!(next_wait(0), None);
        let total: Duration = RETRY_WAITS.iter().sum();
        let days = total.as_secs_f64() / 86_400.0;
        assert!((2.5..=3.2).contains(&days), "{days} days");
    }
}
