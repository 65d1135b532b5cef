//! Embedding providers: the local all-MiniLM-L6-v2 (real weights from `EMBEDDING_MODEL_DIR`)
//! and the OpenAI-compatible client against a loopback server speaking the real wire format.
//! The model's own arithmetic is tested in `shared/minilm/tests/model.rs`; here, the provider
//! behind [`Embedder`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chatpad::embeddings::{EmbedError, Embedder, OpenAiConfig, OpenAiEmbeddings};
use secrecy::SecretString;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn strings(texts: &[&str]) -> Vec<String> {
    texts.iter().map(|t| t.to_string()).collect()
}

/// The in-process model, only built with the `local-embeddings` feature.
#[cfg(feature = "local-embeddings")]
mod local {
    use super::*;
    use chatpad::embeddings::{LocalMiniLm, cosine};

    fn model() -> LocalMiniLm {
        let dir = chatpad::testing::env_var("EMBEDDING_MODEL_DIR").expect(
            "EMBEDDING_MODEL_DIR is not set: point it at all-MiniLM-L6-v2's folder \
             (the bootstrap installs it; `make test` sets it)",
        );
        LocalMiniLm::load(&dir).unwrap()
    }

    fn norm(v: &[f32]) -> f32 {
        v.iter().map(|x| x * x).sum::<f32>().sqrt()
    }

    #[tokio::test]
    async fn local_vectors_are_unit_length_and_rank_similar_meanings_higher() {
        let model = model();
        let embedder = Embedder::Local(model);
        assert_eq!(embedder.model_id(), "local/all-MiniLM-L6-v2");
        assert_eq!(embedder.dimensions(), 384);

        let vectors = embedder
            .embed(&strings(&[
                "change my password",
                "forgot my login",
                "weather in Paris",
            ]))
            .await
            .unwrap();
        assert_eq!(vectors.len(), 3);
        for v in &vectors {
            assert_eq!(v.len(), 384);
            assert!((norm(v) - 1.0).abs() < 1e-4, "norm {}", norm(v));
        }
        let related = cosine(&vectors[0], &vectors[1]);
        let unrelated = cosine(&vectors[0], &vectors[2]);
        // Reference values from sentence-transformers: 0.56 and 0.04.
        assert!(related > 0.4, "related {related}");
        assert!(unrelated < 0.2, "unrelated {unrelated}");
        assert!(related - unrelated > 0.3, "{related} vs {unrelated}");
    }

    #[tokio::test]
    async fn the_document_answering_a_question_ranks_first() {
        let model = model();
        let documents = strings(&[
            "To reset your password, open Settings and choose Security. Click 'Reset password' and \
             we will email you a link. The link expires after one hour. If you do not receive it, \
             check your spam folder.",
            "Invoices are issued on the first day of each month. You can download them as PDF from \
             the Billing page. We accept Visa, Mastercard and bank transfers. Failed payments are \
             retried three times.",
            "Paste the widget script tag before the closing body tag of your website. The chat \
             bubble appears in the bottom right corner. You can change its colour and greeting \
             message in the Appearance tab.",
            "Our office in Lisbon is open from nine to six on weekdays. The team enjoys lunch by the \
             river and plays football on Fridays. Visitors should sign in at the front desk.",
        ]);
        let question = "I never got the email to reset my password, what should I do?".to_owned();
        let document_vectors = model.embed(&documents).await.unwrap();
        let question_vector = model.embed(&[question]).await.unwrap().remove(0);
        let scores: Vec<f32> = document_vectors
            .iter()
            .map(|d| cosine(d, &question_vector))
            .collect();
        let best = scores
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .unwrap()
            .0;
        assert_eq!(best, 0, "scores {scores:?}");
        let runner_up = scores[1..].iter().cloned().fold(f32::MIN, f32::max);
        assert!(scores[0] - runner_up > 0.1, "scores {scores:?}");
    }

    #[test]
    fn a_missing_model_folder_or_file_is_named_in_the_error() {
        let err = LocalMiniLm::load("/nonexistent/model").unwrap_err();
        assert!(matches!(err, EmbedError::ModelFile { .. }));
        assert!(err.to_string().contains("/nonexistent/model"), "{err}");

        let empty =
            std::env::temp_dir().join(format!("chatpad-empty-model-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let err = LocalMiniLm::load(&empty).unwrap_err();
        std::fs::remove_dir_all(&empty).unwrap();
        assert!(err.to_string().contains("config.json"), "{err}");
    }
}

// ---------------------------------------------------------------------------------------------
// OpenAI-compatible client against a loopback server.

/// One request as the server saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path: String,
    authorization: Option<String>,
    content_type: Option<String>,
    body: Value,
}

/// What the server answers: status, extra headers, JSON body.
type Reply = (u16, Vec<(&'static str, String)>, Value);
type Handler = Arc<dyn Fn(usize, &Seen) -> Reply + Send + Sync>;

/// Serves HTTP/1.1 on loopback, one request per connection; `handler` gets the request's
/// number (from 0) and the request. Returns the base URL and the requests seen.
async fn serve(handler: Handler) -> (String, Arc<Mutex<Vec<Seen>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let count = Arc::new(AtomicUsize::new(0));
    let log = seen.clone();
    tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            let (handler, log, count) = (handler.clone(), log.clone(), count.clone());
            tokio::spawn(async move {
                let Some(request) = read_request(&mut socket).await else {
                    return;
                };
                let n = count.fetch_add(1, Ordering::SeqCst);
                log.lock().unwrap().push(request.clone());
                let (status, headers, body) = handler(n, &request);
                let body = body.to_string();
                let mut response = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\n\
                     content-length: {}\r\nconnection: close\r\n",
                    body.len()
                );
                for (name, value) in headers {
                    response.push_str(&format!("{name}: {value}\r\n"));
                }
                response.push_str("\r\n");
                response.push_str(&body);
                let _ = socket.write_all(response.as_bytes()).await;
                let _ = socket.shutdown().await;
            });
        }
    });
    (base, seen)
}

async fn read_request(socket: &mut tokio::net::TcpStream) -> Option<Seen> {
    let mut data = Vec::new();
    let mut buf = [0u8; 8192];
    let header_end = loop {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
        if let Some(pos) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            break pos + 4;
        }
    };
    let head = String::from_utf8_lossy(&data[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim()
                .eq_ignore_ascii_case(name)
                .then(|| value.trim().to_owned())
        })
    };
    let length: usize = header("content-length")?.parse().ok()?;
    while data.len() < header_end + length {
        let n = socket.read(&mut buf).await.ok()?;
        if n == 0 {
            return None;
        }
        data.extend_from_slice(&buf[..n]);
    }
    Some(Seen {
        method,
        path,
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: serde_json::from_slice(&data[header_end..header_end + length]).ok()?,
    })
}

/// A fake vector for input `text` at batch position `i`: distinguishable per text.
fn fake_vector(text: &str) -> Vec<f32> {
    vec![
        text.len() as f32,
        text.chars().next().map_or(0.0, |c| c as u32 as f32),
        1.0,
    ]
}

/// Answers like OpenAI, with the `data` items in reverse `index` order.
fn embeddings_reply(request: &Seen) -> Reply {
    let inputs = request.body["input"].as_array().unwrap();
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .rev()
        .map(|(i, text)| {
            json!({"object": "embedding", "index": i, "embedding": fake_vector(text.as_str().unwrap())})
        })
        .collect();
    (
        200,
        vec![],
        json!({
            "object": "list",
            "data": data,
            "model": request.body["model"],
            "usage": {"prompt_tokens": 5, "total_tokens": 5},
        }),
    )
}

fn client(base: &str, dimensions: usize) -> OpenAiEmbeddings {
    OpenAiEmbeddings::new(OpenAiConfig {
        base_url: base.to_owned(),
        api_key: Some(SecretString::from("sk-test-key")),
        model: "text-embedding-3-small".into(),
        dimensions,
        timeout: Duration::from_secs(10),
    })
    .unwrap()
}

#[tokio::test]
async fn openai_client_speaks_the_wire_format_and_orders_by_index() {
    let (base, seen) = serve(Arc::new(|_, request| embeddings_reply(request))).await;
    let embedder = Embedder::OpenAi(client(&base, 3));
    assert_eq!(embedder.model_id(), "openai/text-embedding-3-small");
    assert_eq!(embedder.dimensions(), 3);

    let texts = strings(&["alpha", "be", "gamma!"]);
    let vectors = embedder.embed(&texts).await.unwrap();
    let expected: Vec<Vec<f32>> = texts.iter().map(|t| fake_vector(t)).collect();
    assert_eq!(vectors, expected);

    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/v1/embeddings");
    assert_eq!(request.authorization.as_deref(), Some("Bearer sk-test-key"));
    assert!(
        request
            .content_type
            .as_deref()
            .is_some_and(|ct| ct.starts_with("application/json"))
    );
    assert_eq!(
        request.body,
        json!({
            "model": "text-embedding-3-small",
            "input": ["alpha", "be", "gamma!"],
            "encoding_format": "float",
        })
    );

    // A base ending in /v1 is not doubled.
    let with_v1 = client(&format!("{base}/v1/"), 3);
    assert_eq!(with_v1.endpoint(), format!("{base}/v1/embeddings"));
    with_v1.embed(&strings(&["x"])).await.unwrap();
}

#[tokio::test]
async fn openai_client_splits_large_inputs_into_batches() {
    let (base, seen) = serve(Arc::new(|_, request| embeddings_reply(request))).await;
    let texts: Vec<String> = (0..300).map(|i| format!("text number {i}")).collect();
    let vectors = client(&base, 3).embed(&texts).await.unwrap();
    let expected: Vec<Vec<f32>> = texts.iter().map(|t| fake_vector(t)).collect();
    assert_eq!(vectors, expected);
    let sizes: Vec<usize> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|s| s.body["input"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![256, 44]);
    assert!(client(&base, 3).embed(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn openai_client_retries_once_after_429() {
    let (base, seen) = serve(Arc::new(|n, request| {
        if n == 0 {
            (
                429,
                vec![("retry-after", "0".to_owned())],
                json!({"error": {"message": "Rate limit reached", "type": "requests"}}),
            )
        } else {
            embeddings_reply(request)
        }
    }))
    .await;
    let started = Instant::now();
    let vectors = client(&base, 3).embed(&strings(&["one"])).await.unwrap();
    assert_eq!(vectors, vec![fake_vector("one")]);
    assert_eq!(seen.lock().unwrap().len(), 2);
    // Retry-After: 0 was honoured rather than the default back-off.
    assert!(started.elapsed() < Duration::from_millis(900));

    // A second failure is not retried again.
    let (base, seen) = serve(Arc::new(|_, _| {
        (
            503,
            vec![("retry-after", "0".to_owned())],
            json!({"error": {"message": "overloaded"}}),
        )
    }))
    .await;
    let err = client(&base, 3)
        .embed(&strings(&["one"]))
        .await
        .unwrap_err();
    assert!(
        matches!(err, EmbedError::Provider { status: 503, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("overloaded"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn openai_client_reports_the_providers_error_without_retrying_4xx() {
    let (base, seen) = serve(Arc::new(|_, _| {
        (
            400,
            vec![],
            json!({"error": {"message": "bad input", "type": "invalid_request_error"}}),
        )
    }))
    .await;
    let err = client(&base, 3).embed(&strings(&["x"])).await.unwrap_err();
    assert!(
        matches!(err, EmbedError::Provider { status: 400, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("bad input"), "{err}");
    assert!(err.to_string().contains("400"), "{err}");
    assert_eq!(seen.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn openai_client_rejects_vectors_of_the_wrong_length() {
    let (base, _) = serve(Arc::new(|_, request| embeddings_reply(request))).await;
    let err = client(&base, 1536)
        .embed(&strings(&["x"]))
        .await
        .unwrap_err();
    assert!(matches!(err, EmbedError::InvalidResponse(_)), "{err}");
    assert!(err.to_string().contains("1536"), "{err}");
}
