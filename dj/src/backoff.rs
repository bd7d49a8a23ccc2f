//! delayed_job's retry schedule: the n-th failed attempt waits `n⁴ + 5` seconds.

use std::time::Duration;

/// Delay before the next run after failed attempt number `attempts` (1-based):
/// 6 s, 21 s, 86 s, 261 s, ... 92 h after the 24th.
pub fn delay(attempts: u32) -> Duration {
    let n = u64::from(attempts);
    Duration::from_secs(n.saturating_pow(4).saturating_add(5))
}

#[cfg(test)]
mod tests {
    use super::delay;

    #[test]
    fn matches_delayed_job_table() {
        let secs: Vec<u64> = [1, 2, 3, 4, 5, 10, 24]
            .iter()
            .map(|&n| delay(n).as_secs())
            .collect();
        assert_eq!(secs, [6, 21, 86, 261, 630, 10005, 331781]);
        let total: u64 = (1..=24).map(|n| delay(n).as_secs()).sum();
        assert_eq!(total, 1_763_140);
    }
}
