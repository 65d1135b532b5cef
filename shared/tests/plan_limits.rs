//! Plan limits are enforced by the database on every insert path, atomically, with an error
//! that names the limit, the usage and the plan that lifts it.

use chatpad::ApiError;
use chatpad::auth::Caller;
use chatpad::testing::TestDb;
use uuid::Uuid;

async fn run_as(test: &TestDb, user: Uuid, sql: &str) -> Result<u64, ApiError> {
    let mut client = test.db.client().await?;
    let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: user }).await?;
    let n = tx.execute(sql, &[]).await?;
    tx.commit().await?;
    Ok(n)
}

#[tokio::test]
async fn the_basic_plan_allows_one_agent_and_names_the_plan_that_allows_more() {
    let test = TestDb::new().await;
    let user = test.user(None).await;
    let create = format!("INSERT INTO agents (user_id, name) VALUES ('{user}', 'a')");
    assert_eq!(run_as(&test, user, &create).await.unwrap(), 1);
    let err = run_as(&test, user, &create).await.unwrap_err();
    let ApiError::PlanLimit { message, details } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(err.status(), 403);
    assert_eq!(err.code(), "plan_limit_exceeded");
    assert_eq!(details["limit"], "max_agents");
    assert_eq!(details["current"], 1);
    assert_eq!(details["allowed"], 1);
    assert_eq!(details["plan"], "basic");
    assert_eq!(details["upgrade_to"], "advanced");
    assert!(message.contains("advanced"), "{message}");
}

#[tokio::test]
async fn parallel_creates_at_the_limit_let_exactly_one_through() {
    let test = std::sync::Arc::new(TestDb::new().await);
    let user = test.user(Some("advanced")).await;
    for i in 0..4 {
        run_as(
            &test,
            user,
            &format!("INSERT INTO agents (user_id, name) VALUES ('{user}', 'a{i}')"),
        )
        .await
        .unwrap();
    }
    let attempts: Vec<_> = (0..6)
        .map(|i| {
            let test = test.clone();
            tokio::spawn(async move {
                run_as(
                    &test,
                    user,
                    &format!("INSERT INTO agents (user_id, name) VALUES ('{user}', 'race{i}')"),
                )
                .await
            })
        })
        .collect();
    let mut succeeded = 0;
    for attempt in attempts {
        match attempt.await.unwrap() {
            Ok(_) => succeeded += 1,
            Err(ApiError::PlanLimit { .. }) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(succeeded, 1);
    let count: i64 = test
        .superuser()
        .await
        .query_one("SELECT count(*) FROM agents WHERE user_id = $1", &[&user])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 5);
}

#[tokio::test]
async fn features_missing_from_the_plan_are_refused() {
    let test = TestDb::new().await;
    let basic = test.user(None).await;
    let err = run_as(
        &test,
        basic,
        &format!("INSERT INTO webhooks (user_id, url, events, secret_ciphertext) VALUES ('{basic}', 'https://x.y', '{{lead.created}}', '\\x00')"),
    )
    .await
    .unwrap_err();
    let ApiError::PlanLimit { details, message } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(details["limit"], "webhooks");
    assert_eq!(details["upgrade_to"], "advanced");
    assert!(message.contains("does not include webhooks"), "{message}");

    let err = run_as(
        &test,
        basic,
        &format!("INSERT INTO agents (user_id, name, appearance) VALUES ('{basic}', 'a', '{{\"hideBranding\": true}}')"),
    )
    .await
    .unwrap_err();
    assert_eq!(err.code(), "plan_limit_exceeded");
}

#[tokio::test]
async fn knowledge_storage_is_capped_by_the_plan() {
    let test = TestDb::new().await;
    let user = test.user(None).await;
    run_as(
        &test,
        user,
        &format!("INSERT INTO agents (user_id, name) VALUES ('{user}', 'a')"),
    )
    .await
    .unwrap();
    let add = |bytes: i64| {
        format!(
            "INSERT INTO knowledge_sources (agent_id, type, title, byte_size)
             SELECT id, 'pdf', 'f', {bytes} FROM agents WHERE user_id = '{user}'"
        )
    };
    run_as(&test, user, &add(90 * 1024 * 1024)).await.unwrap();
    let err = run_as(&test, user, &add(20 * 1024 * 1024))
        .await
        .unwrap_err();
    let ApiError::PlanLimit { details, .. } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(details["limit"], "max_storage_bytes");
    assert_eq!(details["upgrade_to"], "advanced");
}
