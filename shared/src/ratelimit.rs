//! Rate limits kept in DynamoDB: one conditional atomic counter per (limit, key, time window),
//! expiring through the table's TTL. Shared by every Lambda instance, unlike in-memory counters.
//! A [`NestedLimit`] keeps a key's count and its sub-keys' counts (an IP's, and each of its
//! visitors') in one item, checked by one write.
//!
//! Each instance also remembers what it learnt of the current windows: a counter found used up
//! stays refused until its window ends without another write (a flood costs one write per
//! instance and window, not one per request — and cannot throttle the item into letting
//! requests through, below), and a [leased](Limit::leased) limit hands out the requests it
//! counted ahead.
//!
//! If DynamoDB itself fails, the request is let through and the failure logged: an outage of
//! the limiter should not take the API down with it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::operation::update_item::builders::UpdateItemFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use sha2::{Digest, Sha256};

use crate::{ApiError, ApiResult};

/// A named limit: at most `max` requests per `window` for one key.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    pub name: &'static str,
    pub max: u32,
    pub window: Duration,
    /// Requests an instance counts at once (see [`Self::leased`]); 1 counts each one.
    pub lease: u32,
}

impl Limit {
    /// `max` requests per `window`, each counted as it comes.
    pub const fn new(name: &'static str, max: u32, window: Duration) -> Self {
        Limit {
            name,
            max,
            window,
            lease: 1,
        }
    }

    /// `max` requests per minute.
    pub const fn per_minute(name: &'static str, max: u32) -> Self {
        Self::new(name, max, Duration::from_secs(60))
    }

    /// Counts `lease` requests at a time: one write admits this instance's next `lease`
    /// requests for the key. For a key many clients share (an agent's whole traffic), which
    /// would otherwise take a write on one DynamoDB item per request. The price: what an
    /// instance leased and did not use lapses with the window, so with `n` busy instances the
    /// key may be refused up to `n · (lease − 1)` requests early. Once the budget has no room
    /// for a whole lease, requests are counted one by one again.
    pub const fn leased(self, lease: u32) -> Self {
        Limit { lease, ..self }
    }
}

/// Two limits counted in one item: at most `max` requests per `window` for a key (an IP), and
/// at most `sub_max` of them for any one sub-key within it (a visitor).
///
/// One conditional write checks and counts both, where two limits would take a write each.
/// The price: the sub-key's count is kept per key, so a visitor whose IP changes mid-window
/// starts a new count there. Visitor ids are the client's own choice anyway; the per-IP count
/// is the one a client cannot reset.
#[derive(Debug, Clone, Copy)]
pub struct NestedLimit {
    pub name: &'static str,
    pub max: u32,
    pub sub_max: u32,
    pub window: Duration,
}

impl NestedLimit {
    /// `max` requests per minute for a key, `sub_max` of them for each of its sub-keys.
    pub const fn per_minute(name: &'static str, max: u32, sub_max: u32) -> Self {
        NestedLimit {
            name,
            max,
            sub_max,
            window: Duration::from_secs(60),
        }
    }
}

/// The window a request falls in.
struct Window {
    start: u64,
    end: u64,
    /// The 429 a refusal in this window gets.
    refused: ApiError,
}

impl Window {
    fn current(length: Duration) -> Self {
        let now = unix_now();
        let length = length.as_secs().max(1);
        let start = now - now % length;
        let end = start + length;
        Window {
            start,
            end,
            refused: ApiError::RateLimited {
                retry_after_secs: (end - now).max(1),
            },
        }
    }
}

/// What a conditional counter update came to.
enum Counted {
    Yes,
    /// Refused by the condition; the item as it was, when the update asked for it.
    No(Option<HashMap<String, AttributeValue>>),
}

/// What this instance knows of one counter in its current window.
#[derive(Debug, Clone, Copy)]
struct Known {
    /// When the window ends (Unix seconds): then the entry is only clutter.
    window_end: u64,
    /// Requests leased and not handed out yet.
    leased: u32,
    /// DynamoDB refused: the counter is used up until `window_end`.
    used_up: bool,
}

impl Known {
    /// `leased` requests to hand out until `window_end`.
    fn leased(window_end: u64, leased: u32) -> Self {
        Known {
            window_end,
            leased,
            used_up: false,
        }
    }

    /// Refused until `window_end`.
    fn used_up(window_end: u64) -> Self {
        Known {
            window_end,
            leased: 0,
            used_up: true,
        }
    }
}

/// What an instance knows, by counter (limit, key and window).
#[derive(Debug)]
struct Memory {
    counters: HashMap<String, Known>,
    /// The size at which ended windows are swept out next: doubled past what a sweep keeps,
    /// so that a window with many live counters is not swept on every insert.
    sweep_at: usize,
}

/// The smallest [`Memory::sweep_at`].
const SWEEP_AT_LEAST: usize = 4096;

impl Default for Memory {
    fn default() -> Self {
        Memory {
            counters: HashMap::new(),
            sweep_at: SWEEP_AT_LEAST,
        }
    }
}

/// Counts requests in the rate-limit table. Clones share what the instance knows.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    client: aws_sdk_dynamodb::Client,
    table: String,
    known: Arc<Mutex<Memory>>,
}

impl RateLimiter {
    /// A limiter over `table` (`RATE_LIMIT_TABLE`).
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        RateLimiter {
            client,
            table: table.into(),
            known: Arc::default(),
        }
    }

    /// Builds the client from the environment (`RATE_LIMIT_TABLE`, AWS settings).
    pub async fn from_env() -> anyhow::Result<Self> {
        let table = crate::config::required_var("RATE_LIMIT_TABLE")?;
        Ok(Self::new(
            crate::aws::dynamodb_client(&crate::aws::sdk_config().await),
            table,
        ))
    }

    /// Counts one request for `key` under `limit`; a 429 with `Retry-After` once it is exceeded.
    pub async fn check(&self, limit: &Limit, key: &str) -> ApiResult<()> {
        let Window {
            start,
            end: window_end,
            refused,
        } = Window::current(limit.window);
        let counter = format!("{}#{key}#{start}", limit.name);
        match self.known_answer(&counter) {
            Some(true) => return Ok(()),
            Some(false) => return Err(refused),
            None => {}
        }

        // A whole lease while the budget has room for one, then one request at a time.
        let mut taken = limit.lease.clamp(1, limit.max.max(1));
        let mut counted = self.count(&counter, taken, limit.max, window_end).await;
        if taken > 1 && matches!(counted, Ok(false)) {
            taken = 1;
            counted = self.count(&counter, taken, limit.max, window_end).await;
        }
        match counted {
            Ok(true) => {
                if taken > 1 {
                    self.remember(counter, Known::leased(window_end, taken - 1));
                }
                Ok(())
            }
            Ok(false) => {
                self.remember(counter, Known::used_up(window_end));
                Err(refused)
            }
            Err(err) => limiter_unavailable(limit.name, &err),
        }
    }

    /// Counts one request for `key` and for `sub_key` within it under `limit`, in one write;
    /// a 429 with `Retry-After` once either count is used up.
    pub async fn check_nested(
        &self,
        limit: &NestedLimit,
        key: &str,
        sub_key: &str,
    ) -> ApiResult<()> {
        let window = Window::current(limit.window);
        let counter = format!("{}#{key}#{}", limit.name, window.start);
        // In this instance's memory only; the item's attribute is the hash below.
        let sub_counter = format!("{counter}#{sub_key}");
        if [&counter, &sub_counter]
            .into_iter()
            .any(|c| self.known_answer(c) == Some(false))
        {
            return Err(window.refused);
        }
        let update = self
            .counter_update(&counter, window.end)
            .update_expression("ADD n :one, #sub :one SET expires_at = :expires")
            .condition_expression(
                "(attribute_not_exists(n) OR n < :max) AND (attribute_not_exists(#sub) OR #sub < :sub_max)",
            )
            .expression_attribute_names("#sub", sub_attribute(sub_key))
            .expression_attribute_values(":one", AttributeValue::N("1".into()))
            .expression_attribute_values(":max", AttributeValue::N(limit.max.to_string()))
            .expression_attribute_values(":sub_max", AttributeValue::N(limit.sub_max.to_string()))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        match Self::counted(update).await {
            Ok(Counted::Yes) => Ok(()),
            Ok(Counted::No(item)) => {
                // The key's whole budget, or only this sub-key's: the item as it was says which.
                let total = item
                    .as_ref()
                    .and_then(|item| item.get("n")?.as_n().ok()?.parse::<u32>().ok());
                let used_up = if total.is_some_and(|n| n >= limit.max) {
                    counter
                } else {
                    sub_counter
                };
                self.remember(used_up, Known::used_up(window.end));
                Err(window.refused)
            }
            Err(err) => limiter_unavailable(limit.name, &err),
        }
    }

    /// Admitted from a lease (`true`), refused because the counter is used up (`false`), or
    /// not known here (`None`: DynamoDB decides).
    fn known_answer(&self, counter: &str) -> Option<bool> {
        let mut known = self.memory();
        let entry = known.counters.get_mut(counter)?;
        if entry.leased > 0 {
            entry.leased -= 1;
            return Some(true);
        }
        entry.used_up.then_some(false)
    }

    /// The instance's memory; a panic while it was held left nothing half-written in it.
    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn remember(&self, counter: String, learnt: Known) {
        let mut known = self.memory();
        if known.counters.len() >= known.sweep_at {
            let now = unix_now();
            known.counters.retain(|_, entry| entry.window_end > now);
            known.sweep_at = (2 * known.counters.len()).max(SWEEP_AT_LEAST);
        }
        // Requests running at once may each have learnt something: all of it holds.
        known
            .counters
            .entry(counter)
            .and_modify(|entry| {
                entry.leased += learnt.leased;
                entry.used_up |= learnt.used_up;
            })
            .or_insert(learnt);
    }

    /// Adds `n` to the counter unless that would take it past `max`: whether it did.
    async fn count(
        &self,
        counter: &str,
        n: u32,
        max: u32,
        window_end: u64,
    ) -> Result<bool, SdkError<UpdateItemError>> {
        let update = self
            .counter_update(counter, window_end)
            .update_expression("ADD n :n SET expires_at = :expires")
            .condition_expression("attribute_not_exists(n) OR n <= :room")
            .expression_attribute_values(":n", AttributeValue::N(n.to_string()))
            .expression_attribute_values(
                ":room",
                AttributeValue::N(max.saturating_sub(n).to_string()),
            );
        Ok(matches!(Self::counted(update).await?, Counted::Yes))
    }

    /// An update of `counter`'s item, expiring after its window.
    fn counter_update(&self, counter: &str, window_end: u64) -> UpdateItemFluentBuilder {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("pk", AttributeValue::S(counter.to_owned()))
            // Kept a little past the window so late writes never resurrect an old counter.
            .expression_attribute_values(
                ":expires",
                AttributeValue::N((window_end + 60).to_string()),
            )
    }

    /// Sends a conditional counter update; a failed condition is an answer, not an error.
    async fn counted(
        update: UpdateItemFluentBuilder,
    ) -> Result<Counted, SdkError<UpdateItemError>> {
        match update.send().await {
            Ok(_) => Ok(Counted::Yes),
            Err(err) => match err.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(failed)) => {
                    Ok(Counted::No(failed.item().cloned()))
                }
                _ => Err(err),
            },
        }
    }
}

/// A limiter that cannot reach DynamoDB lets the request through (logged).
fn limiter_unavailable(limit: &str, err: &SdkError<UpdateItemError>) -> ApiResult<()> {
    tracing::error!(
        error = %aws_sdk_dynamodb::error::DisplayErrorContext(err),
        limit,
        "rate limiter unavailable; request allowed"
    );
    Ok(())
}

/// The item attribute counting `sub_key`: a hash, so that a key's item stays small (it holds
/// up to `max` of them, and DynamoDB bills a write by the item's size) whatever the sub-keys.
fn sub_attribute(sub_key: &str) -> String {
    let digest = Sha256::digest(sub_key.as_bytes());
    let prefix: [u8; 8] = digest[..8]
        .try_into()
        .expect("a SHA-256 digest has 32 bytes");
    format!("s{:016x}", u64::from_be_bytes(prefix))
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter() -> RateLimiter {
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(aws_sdk_dynamodb::config::BehaviorVersion::latest())
            .build();
        RateLimiter::new(aws_sdk_dynamodb::Client::from_conf(config), "unused")
    }

    #[test]
    fn ended_windows_are_swept_out_and_live_ones_do_not_make_every_insert_sweep() {
        let limiter = limiter();
        let now = unix_now();
        for i in 0..SWEEP_AT_LEAST {
            limiter.remember(format!("ended#{i}"), Known::used_up(now - 1));
        }
        limiter.remember("live#0".into(), Known::used_up(now + 60));
        let counters = |limiter: &RateLimiter| limiter.memory().counters.len();
        assert_eq!(
            counters(&limiter),
            1,
            "the ended windows' counters are gone"
        );
        assert_eq!(limiter.known_answer("live#0"), Some(false));

        // A window with more live counters than the threshold: one sweep, then the next only
        // at twice what it kept.
        for i in 1..=SWEEP_AT_LEAST {
            limiter.remember(format!("live#{i}"), Known::used_up(now + 60));
        }
        assert_eq!(counters(&limiter), SWEEP_AT_LEAST + 1);
        assert_eq!(limiter.memory().sweep_at, 2 * SWEEP_AT_LEAST);
    }
}
