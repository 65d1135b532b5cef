//! The local SQS event pump (infra/stack.py pump) against real SQS (moto): it hands batches to
//! a function's invoke endpoint as Lambda's `SqsEvent`, deletes what the function processed and
//! keeps what `batchItemFailures` lists, which then comes back after the visibility timeout.
//! The function side is the production batch runner, `chatpad::sqs::run_batch`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::QueueAttributeName;
use chatpad::sqs::{Outcome, run_batch};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What the fake Lambda invoke endpoint saw: (path, body, receive count) per record.
type Deliveries = Arc<Mutex<Vec<(String, String, String)>>>;

/// Reads one HTTP/1.1 request (headers + Content-Length body).
async fn read_request(socket: &mut tokio::net::TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = socket.read(&mut chunk).await.unwrap();
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse().unwrap())
                })
                .unwrap_or(0);
            while buf.len() < end + 4 + length {
                let n = socket.read(&mut chunk).await.unwrap();
                buf.extend_from_slice(&chunk[..n]);
            }
            let path = head.split_whitespace().nth(1).unwrap_or("").to_owned();
            return (path, buf[end + 4..end + 4 + length].to_vec());
        }
    }
    (String::new(), Vec::new())
}

/// A stand-in for `cargo lambda watch`'s invoke API running the production batch runner with a
/// worker that fails every message whose body starts with "fail".
async fn serve_invocations(deliveries: Deliveries) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let deliveries = deliveries.clone();
            tokio::spawn(async move {
                let (path, body) = read_request(&mut socket).await;
                let event: SqsEvent = serde_json::from_slice(&body).expect("an SqsEvent");
                for record in &event.records {
                    assert_eq!(record.event_source.as_deref(), Some("aws:sqs"));
                    deliveries.lock().unwrap().push((
                        path.clone(),
                        record.body.clone().unwrap_or_default(),
                        record
                            .attributes
                            .get("ApproximateReceiveCount")
                            .cloned()
                            .unwrap_or_default(),
                    ));
                }
                let response = run_batch(event, |message| async move {
                    if message.body.unwrap_or_default().starts_with("fail") {
                        Outcome::Retry(anyhow::anyhow!("told to fail"))
                    } else {
                        Outcome::Done
                    }
                })
                .await;
                let json = serde_json::to_string(&response).unwrap();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{json}",
                    json.len()
                );
                socket.write_all(reply.as_bytes()).await.unwrap();
            });
        }
    });
    port
}

#[tokio::test]
async fn the_pump_deletes_processed_messages_and_redelivers_reported_failures() {
    let sqs = chatpad::aws::sqs_client(&chatpad::testing::aws_config().await);
    let queue = format!(
        "pump-test-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let url = sqs
        .create_queue()
        .queue_name(&queue)
        .attributes(QueueAttributeName::VisibilityTimeout, "1")
        .send()
        .await
        .unwrap()
        .queue_url
        .unwrap();
    for body in ["ok-1", "ok-2", "fail-1"] {
        sqs.send_message()
            .queue_url(&url)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }

    let deliveries: Deliveries = Arc::default();
    let port = serve_invocations(deliveries.clone()).await;
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    let mut pump = std::process::Command::new(format!("{root}/.venv/bin/python"))
        .arg(format!("{root}/infra/stack.py"))
        .args([
            "pump",
            "--map",
            &format!("{queue}=test-worker"),
            "--port",
            &port.to_string(),
        ])
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("the pump starts (make test installs the virtualenv)");

    let deadline = Instant::now() + Duration::from_secs(60);
    let done = loop {
        let seen = deliveries.lock().unwrap().clone();
        let failed_twice = seen.iter().filter(|(_, body, _)| body == "fail-1").count() >= 2;
        let oks_seen = ["ok-1", "ok-2"]
            .iter()
            .all(|ok| seen.iter().any(|(_, body, _)| body == ok));
        if (failed_twice && oks_seen) || Instant::now() > deadline {
            break seen;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    pump.kill().ok();
    pump.wait().ok();

    assert!(
        done.iter()
            .all(|(path, _, _)| path == "/2015-03-31/functions/test-worker/invocations"),
        "{done:?}"
    );
    for ok in ["ok-1", "ok-2"] {
        assert_eq!(
            done.iter().filter(|(_, b, _)| b == ok).count(),
            1,
            "{ok} delivered once then deleted: {done:?}"
        );
    }
    let retries: Vec<&String> = done
        .iter()
        .filter(|(_, b, _)| b == "fail-1")
        .map(|(_, _, count)| count)
        .collect();
    assert!(retries.len() >= 2, "the failed message came back: {done:?}");
    assert_eq!(retries[0], "1");
    assert_eq!(retries[1], "2");

    let attributes = sqs
        .get_queue_attributes()
        .queue_url(&url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .unwrap()
        .attributes
        .unwrap();
    let remaining: u32 = attributes.values().map(|v| v.parse::<u32>().unwrap()).sum();
    assert_eq!(remaining, 1, "only the failing message is left");
    sqs.delete_queue().queue_url(&url).send().await.unwrap();
}
