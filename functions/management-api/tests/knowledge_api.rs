//! Knowledge sources end to end, as a customer uses them: the management API over HTTP (the
//! running function), uploads through presigned URLs into S3 (moto), the outbox relayed to SQS,
//! and the real ingest-worker run by the local event pump — then the stored chunks and their
//! citations read back through the API. A small web site served on loopback stands in for a
//! customer's site.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chatpad::testing::http::{Reply, Seen, Server, not_found};
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Polls a source until processing ends (`ready` or `error`); a liveness bound, not a speed
/// check: the first job also compiles and starts the worker under `cargo lambda watch`.
async fn settled(user: &User, source_id: &str) -> Value {
    for _ in 0..600 {
        let (status, source) = user.get(&format!("/v1/knowledge/{source_id}")).await;
        assert_eq!(status, StatusCode::OK, "{source}");
        if matches!(source["status"].as_str(), Some("ready" | "error")) {
            return source;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    panic!("source {source_id} was not processed within 5 minutes (see .local/pump.log)");
}

/// Every chunk of a source, in order.
async fn chunks(user: &User, source_id: &str) -> Vec<Value> {
    let (status, page) = user
        .get(&format!("/v1/knowledge/{source_id}/chunks?limit=100"))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    page["data"].as_array().unwrap().clone()
}

async fn new_agent(user: &User) -> String {
    let (status, agent) = user.post("/v1/agents", json!({ "name": "Support" })).await;
    assert_eq!(status, StatusCode::CREATED, "{agent}");
    agent["id"].as_str().unwrap().to_owned()
}

/// Asks for an upload URL, PUTs `bytes` to it and returns the upload id.
async fn upload(user: &User, agent: &str, file_name: &str, bytes: &[u8]) -> String {
    let (status, ticket) = user
        .post(
            &format!("/v1/agents/{agent}/knowledge/uploads"),
            json!({ "fileName": file_name, "byteSize": bytes.len() }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    assert_eq!(ticket["method"], "PUT");
    let mut put = reqwest::Client::new().put(ticket["url"].as_str().unwrap());
    for (name, value) in ticket["headers"].as_object().unwrap() {
        put = put.header(name, value.as_str().unwrap());
    }
    let response = put.body(bytes.to_vec()).send().await.unwrap();
    assert!(
        response.status().is_success(),
        "{:?}",
        response.text().await
    );
    ticket["uploadId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn text_qa_and_uploaded_files_become_cited_chunks() {
    let owner = User::new("kb-owner");
    owner.sign_in().await;
    let agent = new_agent(&owner).await;
    let sources = format!("/v1/agents/{agent}/knowledge");

    // Typed text.
    let (status, text) = owner
        .post(
            &sources,
            json!({ "type": "text", "title": "Returns", "text": "# Returns\n\nItems can be returned within 30 days of delivery for a full refund." }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{text}");
    assert_eq!(text["status"], "pending");
    // Q&A pairs: each pair stays one chunk, the question as its section.
    let (status, qa) = owner
        .post(
            &sources,
            json!({ "type": "qa", "title": "FAQ", "pairs": [
                { "question": "Do you ship to Canada?", "answer": "Yes, in 5 to 7 business days." },
                { "question": "Can I pay by invoice?", "answer": "Only on annual business plans." }
            ] }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{qa}");
    // A CSV file through an upload URL: one record per row, cited by row number.
    let csv = b"plan,price,seats\nBasic,9,1\nTeam,49,10\n";
    let upload_id = upload(&owner, &agent, "prices.csv", csv).await;
    let (status, file) = owner
        .post(&sources, json!({ "type": "file", "uploadId": upload_id }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{file}");
    assert_eq!(file["type"], "csv");
    assert_eq!(file["title"], "prices.csv");
    assert_eq!(file["byteSize"], csv.len());
    // An upload id works once.
    let (status, again) = owner
        .post(&sources, json!({ "type": "file", "uploadId": upload_id }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{again}");

    let text = settled(&owner, text["id"].as_str().unwrap()).await;
    assert_eq!(text["status"], "ready", "{text}");
    let text_chunks = chunks(&owner, text["id"].as_str().unwrap()).await;
    assert!(!text_chunks.is_empty());
    assert!(
        text_chunks[0]["content"]
            .as_str()
            .unwrap()
            .contains("30 days")
    );
    assert_eq!(text_chunks[0]["embeddingModel"], "local/all-MiniLM-L6-v2");
    assert_eq!(text["chunkCount"], text_chunks.len());

    let qa = settled(&owner, qa["id"].as_str().unwrap()).await;
    assert_eq!(qa["status"], "ready", "{qa}");
    let qa_chunks = chunks(&owner, qa["id"].as_str().unwrap()).await;
    assert_eq!(qa_chunks.len(), 2, "{qa_chunks:?}");
    assert!(
        qa_chunks[0]["content"]
            .as_str()
            .unwrap()
            .contains("5 to 7 business days")
    );
    assert_eq!(qa_chunks[1]["location"]["section"], "Can I pay by invoice?");

    let file = settled(&owner, file["id"].as_str().unwrap()).await;
    assert_eq!(file["status"], "ready", "{file}");
    assert_eq!(
        file["progress"]["itemsDone"],
        file["progress"]["itemsTotal"]
    );
    let file_chunks = chunks(&owner, file["id"].as_str().unwrap()).await;
    let team_row = file_chunks
        .iter()
        .find(|c| c["content"].as_str().unwrap().contains("Team"))
        .expect("the Team row is a chunk");
    assert!(team_row["content"].as_str().unwrap().contains("49"));
    assert_eq!(team_row["location"]["row"], 2, "{team_row}");

    // The list shows all three, newest first.
    let (status, page) = owner.get(&sources).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(field(&page, "type"), ["csv", "qa", "text"]);

    // Deleting a source deletes its chunks at once and its file in the background.
    let (status, _) = owner
        .delete(&format!("/v1/knowledge/{}", file["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, _) = owner
        .get(&format!(
            "/v1/knowledge/{}/chunks",
            file["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn uploads_are_checked_by_their_bytes_and_size() {
    let owner = User::new("kb-upload");
    owner.sign_in().await;
    let agent = new_agent(&owner).await;
    let sources = format!("/v1/agents/{agent}/knowledge");

    // A "PDF" that is plain text: refused from its bytes, whatever the name says.
    let upload_id = upload(&owner, &agent, "manual.pdf", b"just some text, not a PDF").await;
    let (status, body) = owner
        .post(&sources, json!({ "type": "file", "uploadId": upload_id }))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("uploadId"),
        "{body}"
    );

    // Confirming before uploading anything.
    let (status, ticket) = owner
        .post(
            &format!("{sources}/uploads"),
            json!({ "fileName": "notes.md", "byteSize": 10 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{ticket}");
    assert_eq!(ticket["fileType"], "markdown");
    let (status, body) = owner
        .post(
            &sources,
            json!({ "type": "file", "uploadId": ticket["uploadId"] }),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("nothing was uploaded"),
        "{body}"
    );

    // Declared size and type are checked before any URL is handed out.
    for (request, field) in [
        (
            json!({ "fileName": "big.pdf", "byteSize": 1_000_000_000_i64 }),
            "byteSize",
        ),
        (
            json!({ "fileName": "empty.pdf", "byteSize": 0 }),
            "byteSize",
        ),
        (
            json!({ "fileName": "virus.exe", "byteSize": 10 }),
            "fileType",
        ),
        (
            json!({ "fileName": "a.txt", "byteSize": 10, "fileType": "exe" }),
            "fileType",
        ),
        (json!({ "fileName": "", "byteSize": 10 }), "fileName"),
    ] {
        let (status, body) = owner.post(&format!("{sources}/uploads"), request).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(
            body["error"]["details"]["fields"][field].is_string(),
            "{body}"
        );
    }
}

#[tokio::test]
async fn bad_sources_get_clear_errors_and_other_tenants_see_nothing() {
    let owner = User::new("kb-valid");
    owner.sign_in().await;
    let agent = new_agent(&owner).await;
    let sources = format!("/v1/agents/{agent}/knowledge");

    for (body, field) in [
        (json!({ "type": "url", "url": "ftp://example.com/" }), "url"),
        (json!({ "type": "url", "url": "not a url" }), "url"),
        (
            json!({ "type": "url", "url": "https://user:pw@example.com/" }),
            "url",
        ),
        (
            json!({ "type": "url", "url": "https://example.com/", "crawl": { "mode": "site", "maxPages": 100000 } }),
            "crawl.maxPages",
        ),
        (
            json!({ "type": "url", "url": "https://example.com/", "syncEveryHours": 0 }),
            "syncEveryHours",
        ),
        (
            json!({ "type": "text", "title": "Empty", "text": "   " }),
            "text",
        ),
        (json!({ "type": "text", "title": "", "text": "x" }), "title"),
        (
            json!({ "type": "qa", "title": "FAQ", "pairs": [] }),
            "pairs",
        ),
        (
            json!({ "type": "qa", "title": "FAQ", "pairs": [{ "question": "?", "answer": "" }] }),
            "pairs[0].answer",
        ),
    ] {
        let (status, error) = owner.post(&sources, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::UNPROCESSABLE_ENTITY,
            "{body} -> {error}"
        );
        assert!(
            error["error"]["details"]["fields"][field].is_string(),
            "{body} -> {error}"
        );
    }
    let (status, error) = owner
        .post(&sources, json!({ "type": "video", "url": "x" }))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");

    // A private address is accepted as a URL but refused by the SSRF guard when fetched.
    let (status, source) = owner
        .post(
            &sources,
            json!({ "type": "url", "url": "http://169.254.169.254/latest/meta-data/" }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    let id = source["id"].as_str().unwrap().to_owned();
    // Re-syncing while queued is a conflict, not a second job.
    let (status, body) = owner
        .post(&format!("/v1/knowledge/{id}/sync"), json!({}))
        .await;
    assert!(
        status == StatusCode::CONFLICT || body["status"] == "pending",
        "{status} {body}"
    );
    let source = settled(&owner, &id).await;
    assert_eq!(source["status"], "error", "{source}");
    assert!(
        source["error"]
            .as_str()
            .unwrap()
            .contains("169.254.169.254"),
        "{source}"
    );

    // Another account sees none of it.
    let stranger = User::new("kb-stranger");
    stranger.sign_in().await;
    for path in [
        format!("/v1/knowledge/{id}"),
        format!("/v1/knowledge/{id}/chunks"),
        sources.clone(),
    ] {
        let (status, _) = stranger.get(&path).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
    }
    let (status, _) = stranger
        .post(
            &sources,
            json!({ "type": "text", "title": "x", "text": "y" }),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = stranger.delete(&format!("/v1/knowledge/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A tiny web site on loopback: pages with ETags, answering `If-None-Match` with 304, and
/// counting full (200) responses per path.
#[derive(Clone, Default)]
struct Site {
    pages: Arc<Mutex<HashMap<String, (String, String)>>>,
    full_responses: Arc<Mutex<HashMap<String, usize>>>,
}

impl Site {
    fn set(&self, path: &str, content_type: &str, body: &str) {
        self.pages
            .lock()
            .unwrap()
            .insert(path.into(), (content_type.into(), body.into()));
    }

    fn full_responses(&self, path: &str) -> usize {
        *self.full_responses.lock().unwrap().get(path).unwrap_or(&0)
    }

    /// Starts serving on loopback; returns the base URL (`http://127.0.0.1:<port>`).
    async fn serve(self) -> String {
        let server = Server::start(move |seen, _| self.answer(seen)).await;
        format!("http://{}", server.addr)
    }

    fn answer(&self, seen: &Seen) -> Reply {
        let page = self.pages.lock().unwrap().get(&seen.path).cloned();
        let Some((content_type, body)) = page else {
            return not_found();
        };
        let etag = format!(
            "\"{:x}\"",
            body.len() * 31 + body.bytes().map(usize::from).sum::<usize>()
        );
        if seen.header("if-none-match") == Some(etag.as_str()) {
            return Reply::Respond {
                status: 304,
                headers: vec![("ETag", etag)],
                body: Vec::new(),
            };
        }
        *self
            .full_responses
            .lock()
            .unwrap()
            .entry(seen.path.clone())
            .or_default() += 1;
        Reply::Respond {
            status: 200,
            headers: vec![("Content-Type", content_type), ("ETag", etag)],
            body: body.into_bytes(),
        }
    }
}

fn html(title: &str, text: &str) -> String {
    format!(
        "<html><head><title>{title}</title></head><body><nav>Home | Pricing | Blog</nav>\
         <main><h1>{title}</h1><p>{text}</p></main><footer>© Example Inc.</footer></body></html>"
    )
}

#[tokio::test]
async fn a_sitemap_is_crawled_and_a_resync_reembeds_only_changed_pages() {
    let site = Site::default();
    let base = site.clone().serve().await;
    site.set(
        "/robots.txt",
        "text/plain",
        "User-agent: *\nDisallow: /private\n",
    );
    site.set(
        "/sitemap.xml",
        "application/xml",
        &format!(
            r#"<?xml version="1.0" encoding="UTF-8"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
            <url><loc>{base}/shipping</loc></url><url><loc>{base}/warranty</loc></url>
            <url><loc>{base}/private/salaries</loc></url></urlset>"#
        ),
    );
    site.set(
        "/shipping",
        "text/html",
        &html(
            "Shipping",
            "We ship worldwide; parcels to Europe take 3 days.",
        ),
    );
    site.set(
        "/warranty",
        "text/html",
        &html("Warranty", "Every device has a two-year warranty."),
    );
    site.set(
        "/private/salaries",
        "text/html",
        &html("Salaries", "Secret numbers."),
    );

    let owner = User::new("kb-site");
    owner.sign_in().await;
    let agent = new_agent(&owner).await;
    let (status, source) = owner
        .post(
            &format!("/v1/agents/{agent}/knowledge"),
            json!({ "type": "url", "url": format!("{base}/sitemap.xml"), "crawl": { "mode": "sitemap" }, "syncEveryHours": 24 }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    assert_eq!(source["type"], "sitemap");
    assert!(source["nextSyncAt"].is_string(), "{source}");
    let id = source["id"].as_str().unwrap().to_owned();
    let source = settled(&owner, &id).await;
    assert_eq!(source["status"], "ready", "{source}");
    assert_eq!(
        source["progress"]["itemsTotal"], 2,
        "robots.txt keeps /private out: {source}"
    );

    let first = chunks(&owner, &id).await;
    let by_page = |chunks: &[Value], page: &str| -> Vec<String> {
        chunks
            .iter()
            .filter(|c| c["location"]["url"] == format!("{base}{page}"))
            .map(|c| c["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let shipping = by_page(&first, "/shipping");
    let warranty = by_page(&first, "/warranty");
    assert!(!shipping.is_empty() && !warranty.is_empty(), "{first:?}");
    assert!(
        first
            .iter()
            .all(|c| !c["content"].as_str().unwrap().contains("Secret"))
    );
    // Boilerplate (navigation, footer) is not knowledge.
    assert!(
        first
            .iter()
            .all(|c| !c["content"].as_str().unwrap().contains("Example Inc")),
        "{first:?}"
    );

    // The warranty page changes; a re-sync fetches both conditionally and re-embeds only it.
    site.set(
        "/warranty",
        "text/html",
        &html("Warranty", "Every device now has a three-year warranty."),
    );
    let (status, body) = owner
        .post(&format!("/v1/knowledge/{id}/sync"), json!({}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let source = settled(&owner, &id).await;
    assert_eq!(source["status"], "ready", "{source}");
    assert_eq!(
        site.full_responses("/shipping"),
        1,
        "the unchanged page answered 304"
    );
    assert_eq!(site.full_responses("/warranty"), 2);
    let second = chunks(&owner, &id).await;
    assert_eq!(
        by_page(&second, "/shipping"),
        shipping,
        "unchanged page kept its chunks"
    );
    let new_warranty = by_page(&second, "/warranty");
    assert!(!new_warranty.is_empty());
    assert!(new_warranty.iter().all(|c| !warranty.contains(c)));
    assert!(
        second
            .iter()
            .any(|c| c["content"].as_str().unwrap().contains("three-year"))
    );
}

#[tokio::test]
async fn changing_the_agents_chunk_size_reprocesses_its_sources() {
    let owner = User::new("kb-rechunk");
    owner.sign_in().await;
    let agent = new_agent(&owner).await;
    let paragraph = "Our support team answers every ticket within one business day. ";
    let text: String = (0..40)
        .map(|i| format!("## Topic {i}\n\n{paragraph}\n\n"))
        .collect();
    let (status, source) = owner
        .post(
            &format!("/v1/agents/{agent}/knowledge"),
            json!({ "type": "text", "title": "Handbook", "text": text }),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{source}");
    let id = source["id"].as_str().unwrap().to_owned();
    let before = settled(&owner, &id).await;
    assert_eq!(before["status"], "ready", "{before}");

    let (status, body) = owner
        .patch(
            &format!("/v1/agents/{agent}"),
            json!({ "chunkSizeTokens": 40, "chunkOverlapTokens": 0 }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The change queued the source again in the same transaction.
    let (_, queued) = owner.get(&format!("/v1/knowledge/{id}")).await;
    assert!(
        matches!(queued["status"].as_str(), Some("pending" | "processing")),
        "{queued}"
    );
    let after = settled(&owner, &id).await;
    assert_eq!(after["status"], "ready", "{after}");
    assert!(
        after["chunkCount"].as_i64().unwrap() > before["chunkCount"].as_i64().unwrap(),
        "smaller chunks, more of them: {before} -> {after}"
    );
}
