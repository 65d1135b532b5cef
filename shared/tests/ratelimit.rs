//! Rate limits against the real DynamoDB API (moto on loopback, through aws-sdk-dynamodb).
//!
//! That parallel requests never exceed the limit is DynamoDB's guarantee for a conditional
//! update; moto's threaded server does not give it (12 parallel checks against a limit of 5
//! let 7 through here), so only sequential behaviour is tested.
//!
//! Each `RateLimiter` stands for one Lambda instance: what it learnt of a window is its own.

use std::collections::HashMap;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use chatpad::ApiError;
use chatpad::ratelimit::{Limit, NestedLimit, RateLimiter};

async fn limiter() -> RateLimiter {
    chatpad::testing::rate_limiter().await
}

/// A limit name of its own per test.
fn unique_name() -> &'static str {
    Box::leak(format!("test-{}", uuid::Uuid::new_v4()).into_boxed_str())
}

/// A limit of its own per test, over a day, so no test straddles a window boundary.
fn day_limit(max: u32) -> Limit {
    Limit::new(unique_name(), max, Duration::from_secs(86_400))
}

fn is_refused(result: chatpad::ApiResult<()>) -> bool {
    matches!(result, Err(ApiError::RateLimited { .. }))
}

fn table() -> String {
    chatpad::testing::env_var("RATE_LIMIT_TABLE").unwrap()
}

async fn dynamodb() -> aws_sdk_dynamodb::Client {
    chatpad::aws::dynamodb_client(&chatpad::testing::aws_config().await)
}

/// The limit's counter items as DynamoDB holds them (every page of the scan: the filter
/// applies after a page is read).
async fn counter_items(name: &str) -> Vec<HashMap<String, AttributeValue>> {
    dynamodb()
        .await
        .scan()
        .table_name(table())
        .filter_expression("begins_with(pk, :name)")
        .expression_attribute_values(":name", AttributeValue::S(format!("{name}#")))
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap()
}

/// The limit's counters: (key, count) of each.
async fn stored_counters(limit: &Limit) -> Vec<(String, u32)> {
    let mut counters: Vec<(String, u32)> = counter_items(limit.name)
        .await
        .iter()
        .map(|item| {
            let key = item["pk"]
                .as_s()
                .unwrap()
                .split('#')
                .nth(1)
                .unwrap()
                .to_owned();
            (key, item["n"].as_n().unwrap().parse().unwrap())
        })
        .collect();
    counters.sort();
    counters
}

async fn delete_counters(name: &str) {
    let client = dynamodb().await;
    for item in counter_items(name).await {
        client
            .delete_item()
            .table_name(table())
            .key("pk", item["pk"].clone())
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_key_gets_exactly_max_requests_per_window_and_keys_are_independent() {
    let limiter = limiter().await;
    let limit = day_limit(3);
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
async fn a_used_up_counter_is_refused_without_asking_dynamodb_until_its_window_ends() {
    let (instance, other_instance) = (limiter().await, limiter().await);
    let limit = day_limit(2);
    for _ in 0..2 {
        instance.check(&limit, "flood").await.unwrap();
    }
    assert!(is_refused(instance.check(&limit, "flood").await));
    assert_eq!(stored_counters(&limit).await, [("flood".to_owned(), 2)]);
    // With the counter gone DynamoDB would admit again, but the instance does not ask.
    delete_counters(limit.name).await;
    for _ in 0..3 {
        assert!(is_refused(instance.check(&limit, "flood").await));
    }
    assert_eq!(stored_counters(&limit).await, []);
    // Another instance knows nothing of it: it counts in DynamoDB.
    other_instance.check(&limit, "flood").await.unwrap();
    // And other keys are not affected.
    instance.check(&limit, "quiet").await.unwrap();
    assert_eq!(
        stored_counters(&limit).await,
        [("flood".to_owned(), 1), ("quiet".to_owned(), 1)]
    );
}

#[tokio::test]
async fn a_leased_limit_counts_ahead_and_never_admits_more_than_max_across_instances() {
    let (a, b) = (limiter().await, limiter().await);
    let limit = day_limit(10).leased(4);
    let key = "agent";
    // A's first request counts four: the next three cost no write.
    for _ in 0..4 {
        a.check(&limit, key).await.unwrap();
        assert_eq!(stored_counters(&limit).await, [(key.to_owned(), 4)]);
    }
    b.check(&limit, key).await.unwrap();
    assert_eq!(stored_counters(&limit).await, [(key.to_owned(), 8)]);
    // No room for another lease of four: A counts one at a time, up to the limit.
    a.check(&limit, key).await.unwrap();
    assert_eq!(stored_counters(&limit).await, [(key.to_owned(), 9)]);
    a.check(&limit, key).await.unwrap();
    assert!(is_refused(a.check(&limit, key).await));
    // B still hands out the three it leased, then it is refused as well.
    for _ in 0..3 {
        b.check(&limit, key).await.unwrap();
    }
    assert!(is_refused(b.check(&limit, key).await));
    assert_eq!(stored_counters(&limit).await, [(key.to_owned(), 10)]);
}

/// A nested limit's items: per key, its total and its sub-keys' counts (sorted).
async fn nested_counts(limit: &NestedLimit) -> Vec<(String, u32, Vec<u32>)> {
    let number = |value: &AttributeValue| -> u32 { value.as_n().unwrap().parse().unwrap() };
    let mut items: Vec<(String, u32, Vec<u32>)> = counter_items(limit.name)
        .await
        .iter()
        .map(|item| {
            let key = item["pk"].as_s().unwrap().split('#').nth(1).unwrap();
            let mut subs: Vec<u32> = item
                .iter()
                .filter(|(name, _)| !["pk", "n", "expires_at"].contains(&name.as_str()))
                .map(|(_, value)| number(value))
                .collect();
            subs.sort();
            (key.to_owned(), number(&item["n"]), subs)
        })
        .collect();
    items.sort();
    items
}

#[tokio::test]
async fn a_nested_limit_counts_a_key_and_its_sub_keys_in_one_item() {
    let (instance, other_instance) = (limiter().await, limiter().await);
    let limit = NestedLimit {
        name: unique_name(),
        max: 5,
        sub_max: 2,
        window: Duration::from_secs(86_400),
    };
    let ip = "198.51.100.7";
    // Visitor a: two admitted, the third refused by its own count, which leaves the IP's.
    for _ in 0..2 {
        instance.check_nested(&limit, ip, "a").await.unwrap();
    }
    assert!(is_refused(instance.check_nested(&limit, ip, "a").await));
    assert_eq!(nested_counts(&limit).await, [(ip.to_owned(), 2, vec![2])]);
    // Another instance learns from DynamoDB that a is done; other visitors of the IP go on.
    assert!(is_refused(
        other_instance.check_nested(&limit, ip, "a").await
    ));
    for visitor in ["b", "b", "c"] {
        instance.check_nested(&limit, ip, visitor).await.unwrap();
    }
    assert_eq!(
        nested_counts(&limit).await,
        [(ip.to_owned(), 5, vec![1, 2, 2])],
        "one item: the IP's five, and each visitor's own; refusals count nothing"
    );
    // The IP's budget is used up: a new visitor is refused too.
    assert!(is_refused(instance.check_nested(&limit, ip, "d").await));
    // Each instance remembers what it learnt. With the item gone, this one still refuses
    // every visitor of the IP without a write; the other knew only that a was done.
    delete_counters(limit.name).await;
    assert!(is_refused(instance.check_nested(&limit, ip, "e").await));
    assert!(is_refused(
        other_instance.check_nested(&limit, ip, "a").await
    ));
    assert_eq!(nested_counts(&limit).await, []);
    other_instance.check_nested(&limit, ip, "e").await.unwrap();
    // Another IP has its own budget, the same visitor id within it too.
    instance
        .check_nested(&limit, "203.0.113.5", "a")
        .await
        .unwrap();
    assert_eq!(
        nested_counts(&limit).await,
        [
            ("198.51.100.7".to_owned(), 1, vec![1]),
            ("203.0.113.5".to_owned(), 1, vec![1]),
        ]
    );
}
