//! POST `{"agentId", "visitorId", "fileName", "contentType", "byteSize"}`: a short-lived
//! presigned PUT URL for a file the widget visitor attaches to a message (an image, a PDF or a
//! voice message). The signature binds the type and the exact size; the key lies under the
//! agent and the visitor, and widget-chat checks the object again (size, type, first bytes)
//! when a message names it (`attachments: [{"key"}]`).
//!
//! Public like the other widget endpoints: the agent must be active, the page's `Origin` one
//! of its allowed domains; rate-limited per IP and per visitor.

use chatpad::agents::widget;
use chatpad::auth::Caller;
use chatpad::chat::attachments::{AttachmentStore, UploadRequest, check_visitor_id};
use chatpad::ratelimit::{Limit, RateLimiter};
use chatpad::{ApiResult, Deps, agents, db, http};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use tracing::Instrument;

/// The request is a few short fields.
const BODY_LIMIT: usize = 4 * 1024;
/// Upload URLs per client IP and minute.
const PER_IP: Limit = Limit::per_minute("upload-ip", 30);
/// Upload URLs per visitor of an agent and minute.
const PER_VISITOR: Limit = Limit::per_minute("upload-visitor", 10);

/// What the function holds for its life.
pub struct UploadDeps {
    pub deps: Deps,
    pub limiter: RateLimiter,
    pub store: AttachmentStore,
}

impl UploadDeps {
    /// `DATABASE_URL` and the rest of the shared config, `RATE_LIMIT_TABLE`, `UPLOADS_BUCKET`.
    pub async fn from_env() -> anyhow::Result<Self> {
        let sdk = chatpad::aws::sdk_config().await;
        Ok(UploadDeps {
            deps: Deps::from_env()?,
            limiter: RateLimiter::from_env().await?,
            store: AttachmentStore::from_env(&sdk)?,
        })
    }
}

/// Handles one request (and CORS preflights); never fails (errors become JSON responses).
pub async fn handle(deps: &UploadDeps, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    let origin = http::origin(&req);
    if req.method() == Method::OPTIONS {
        return http::respond(&request_id, Ok(http::preflight(origin)));
    }
    let result = run(deps, &req, origin)
        .instrument(tracing::info_span!("create_widget_upload", request_id))
        .await;
    http::widget_respond(&request_id, origin, result)
}

async fn run(deps: &UploadDeps, req: &Request, origin: Option<&str>) -> ApiResult<Response<Body>> {
    http::require_method(req, Method::POST)?;
    let request: UploadRequest = http::parse_json(req, BODY_LIMIT)?;
    check_visitor_id(&request.visitor_id)?;
    let agent_id = request.agent_id;
    if let Some(ip) = http::client_ip(req) {
        deps.limiter.check(&PER_IP, &ip.to_string()).await?;
    }
    deps.limiter
        .check(&PER_VISITOR, &format!("{agent_id}:{}", request.visitor_id))
        .await?;

    let visitor = Caller::Widget {
        agent_id,
        visitor_id: request.visitor_id.clone(),
    };
    let mut client = deps.deps.db.client().await?;
    let tx = db::begin_as(&mut client, &visitor).await?;
    // Unknown and disabled agents look the same: 404.
    let agent = agents::get(&tx, agent_id).await?;
    widget::check_origin(&agent.allowed_domains, origin)?;
    drop(tx);
    let ticket = deps.store.presign(&request).await?;
    tracing::info!(%agent_id, key = ticket.key, "attachment upload URL issued");
    http::json(StatusCode::CREATED, &ticket)
}
