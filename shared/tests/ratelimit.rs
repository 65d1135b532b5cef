//! Rate limits against the real DynamoDB API (moto on loopback, through aws-sdk-dynamodb).
//!
//! That parallel requests never exceed the limit is DynamoDB's guarantee for a conditional
//! update; moto's threaded server does not give it (12 parallel checks against a limit of 5
//! let 7 through here), so only sequential behaviour is tested.

use std::time::Duration;

use chatpad::ApiError;
use chatpad::ratelimit::{Limit, RateLimiter};

async fn limiter() -> RateLimiter {
    chatpad::testing::rate_limiter().await
}

#[tokio::test]
async fn a_key_gets_exactly_max_requests_per_window_and_keys_are_independent() {
    let limiter = limiter().await;
    let name: &'static str = Box::leak(format!("test-{}", uuid::Uuid::new_v4()).into_boxed_str());
    // A day-long window, so the test never straddles a window boundary.
    let limit = Limit {
        name,
        max: 3,
        window: Duration::from_secs(86_400),
    };
    for _ in 0..3 {
        limiter.check(&limit, "1.2.3.4").await.unwrap();
    }
    match limiter.check(&limit, "1.2.3.4").await {
        Err(ApiError::RateLimited { retry_after_secs }) => {
            assert!((1..=86_400).contains(&retry_after_secs))
        }
        other => panic!("expected 429, got {other:?}"),
    }
    limiter
        .check(&limit, "5.6.7.8")
        .await
        .expect("another key has its own budget");
}
