//! get-widget-config's throughput and latency, the handler called in-process (the local
//! Lambda emulator's overhead is not counted) against the local Postgres: `--tasks` callers
//! in parallel (default 8), each sending requests back to back for `--seconds` (default 10).
//!
//! ```text
//! infra/with-services.sh cargo run --release -p get-widget-config --example config-bench
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chatpad::Deps;
use chatpad::testing::TestDb;
use lambda_http::{Body, RequestExt};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut tasks = 8;
    let mut seconds = 10u64;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--tasks" => tasks = value.parse()?,
            "--seconds" => seconds = value.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }

    let test = TestDb::new().await;
    let owner = test.user(Some("pro")).await;
    let agent = test.agent(owner).await;
    test.superuser()
        .await
        .execute(
            "UPDATE agents SET help_center_enabled = true, appearance = '{\"primaryColor\":\"#0a7cff\"}',
                    lead_form_fields = '[{\"name\":\"email\",\"label\":\"Email\",\"type\":\"email\",\"required\":true}]'
             WHERE id = $1",
            &[&agent],
        )
        .await?;
    // A pool as large as the callers: one Lambda instance serves one request at a time, so
    // `tasks` callers stand for `tasks` warm instances.
    let mut deps = Deps::new(test.config())?;
    deps.db = chatpad::db::Database::connect_lazy(
        &secrecy::SecretString::from(test.app_url.clone()),
        tasks,
    )?;
    let deps = Arc::new(deps);

    let request = move || {
        lambda_http::http::Request::builder()
            .method("GET")
            .uri(format!("/?agentId={agent}"))
            .body(Body::Empty)
            .expect("request")
            .with_query_string_parameters(
                [("agentId".to_owned(), agent.to_string())]
                    .into_iter()
                    .collect::<std::collections::HashMap<_, _>>(),
            )
    };
    for _ in 0..200 {
        let response = get_widget_config::handle(&deps, request()).await;
        anyhow::ensure!(response.status() == 200, "status {}", response.status());
    }

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut handles = Vec::new();
    for _ in 0..tasks {
        let deps = Arc::clone(&deps);
        handles.push(tokio::spawn(async move {
            let mut millis = Vec::new();
            while Instant::now() < deadline {
                let t0 = Instant::now();
                let response = get_widget_config::handle(&deps, request()).await;
                assert_eq!(response.status(), 200);
                millis.push(t0.elapsed().as_secs_f64() * 1e3);
            }
            millis
        }));
    }
    let mut millis = Vec::new();
    for handle in handles {
        millis.extend(handle.await?);
    }
    let elapsed = started.elapsed().as_secs_f64();
    millis.sort_by(f64::total_cmp);
    let at = |q: f64| millis[((millis.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "get-widget-config: {} requests in {elapsed:.1} s from {tasks} callers = {:.0} requests/s; \
         latency p50 {:.2} ms, p99 {:.2} ms",
        millis.len(),
        millis.len() as f64 / elapsed,
        at(0.5),
        at(0.99)
    );
    Ok(())
}
