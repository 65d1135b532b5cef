//! Rate limits against the real DynamoDB API (moto on loopback, through aws-sdk-dynamodb).

use std::time::Duration;

use chatpad::ApiError;
use chatpad::ratelimit::{Limit, RateLimiter};
use chatpad::testing::env_var;

async fn limiter() -> RateLimiter {
    let config = chatpad::testing::aws_config().await;
    RateLimiter::new(
        chatpad::aws::dynamodb_client(&config),
        env_var("RATE_LIMIT_TABLE").unwrap(),
    )
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

#[tokio::test]
async fn parallel_requests_never_exceed_the_limit() {
    let limiter = limiter().await;
    let name: &'static str = Box::leak(format!("test-{}", uuid::Uuid::new_v4()).into_boxed_str());
    let limit = Limit {
        name,
        max: 5,
        window: Duration::from_secs(86_400),
    };
    let results = futures::future::join_all((0..12).map(|_| limiter.check(&limit, "k"))).await;
    assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 5);
}
