//! POST: a lead from the widget's contact form, linked to its conversation (started here when
//! the visitor has none). Public: the agent id, the visitor id and the agent's allowed domains
//! (`Origin`) identify the caller, rate limits per IP, visitor and agent keep it cheap to run.
//! The lead.created (and conversation.created) webhooks are emitted by the database with the
//! rows and relayed right after the commit.
//!
//! Servers may post leads with `Authorization: Bearer <API key>` (scope `leads:write`, a plan
//! with API access, an agent of the key's account): no Origin check, limited per key instead
//! of per IP, counted as an API call.

use chatpad::agents::widget;
use chatpad::auth::Caller;
use chatpad::auth::api_keys::{self, RequestOrigin};
use chatpad::leads::{self, LeadSubmission};
use chatpad::outbox::Relay;
use chatpad::ratelimit::{Limit, RateLimiter};
use chatpad::{ApiResult, Deps, agents, db, http};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, Response};
use tracing::Instrument;

/// Largest request body: a form of at most 20 fields.
pub const BODY_LIMIT: usize = 32 * 1024;
/// Submissions per client IP and minute.
const PER_IP: Limit = Limit::per_minute("lead-ip", 20);
/// Submissions per visitor of an agent and minute.
const PER_VISITOR: Limit = Limit::per_minute("lead-visitor", 5);
/// Submissions per agent and minute (a flood from many IPs).
const PER_AGENT: Limit = Limit::per_minute("lead-agent", 600);

/// What the function holds for its life.
pub struct LeadDeps {
    pub deps: Deps,
    pub limiter: RateLimiter,
    /// Hands the webhook deliveries the lead emitted to SQS right after the commit.
    pub relay: Relay,
}

impl LeadDeps {
    /// Reads the configuration from the environment (`DATABASE_URL`, `RATE_LIMIT_TABLE`, the
    /// queue URLs).
    pub async fn from_env() -> anyhow::Result<Self> {
        let sdk = chatpad::aws::sdk_config().await;
        Ok(LeadDeps {
            deps: Deps::from_env()?,
            limiter: RateLimiter::from_env().await?,
            relay: Relay::from_env(&sdk)?,
        })
    }
}

/// Handles one request (and CORS preflights); never fails (errors become JSON responses).
pub async fn handle(deps: &LeadDeps, req: Request) -> Response<Body> {
    let request_id = http::request_id(&req);
    let origin = http::origin(&req);
    if req.method() == Method::OPTIONS {
        return http::respond(&request_id, Ok(http::preflight(origin)));
    }
    let result = run(deps, &req, origin)
        .instrument(tracing::info_span!("create_widget_lead", request_id))
        .await;
    http::widget_respond(&request_id, origin, result)
}

async fn run(deps: &LeadDeps, req: &Request, origin: Option<&str>) -> ApiResult<Response<Body>> {
    http::require_method(req, Method::POST)?;
    let submission: LeadSubmission = http::parse_json(req, BODY_LIMIT)?;
    submission.check()?;
    let agent_id = submission.agent_id;
    let key = match http::bearer_token(req) {
        Some(token) => Some(
            api_keys::authorize_for_agent(
                &deps.deps.db,
                &deps.deps.config.api_key_pepper,
                token,
                RequestOrigin {
                    ip: http::client_ip(req),
                    user_agent: http::user_agent(req),
                },
                agent_id,
                "leads:write",
            )
            .await?,
        ),
        None => None,
    };
    // A server calling with its key is no web page: limited per key, no Origin to check.
    let origin = origin.filter(|_| key.is_none());
    match (key, http::client_ip(req)) {
        (Some(key), _) => deps.limiter.check(&PER_IP, &format!("key:{key}")).await?,
        (None, Some(ip)) => deps.limiter.check(&PER_IP, &ip.to_string()).await?,
        (None, None) => {}
    }
    deps.limiter
        .check(
            &PER_VISITOR,
            &format!("{agent_id}:{}", submission.visitor_id),
        )
        .await?;
    deps.limiter
        .check(&PER_AGENT, &agent_id.to_string())
        .await?;

    let visitor = Caller::Widget {
        agent_id,
        visitor_id: submission.visitor_id.clone(),
    };
    let mut client = deps.deps.db.client().await?;
    let tx = db::begin_as(&mut client, &visitor).await?;
    // Unknown and disabled agents look the same: 404.
    let agent = agents::get(&tx, agent_id).await?;
    // Browser pages must be on the agent's allowed domains, as for the chat; a server posting
    // without an Origin is no page.
    widget::check_origin(&agent.allowed_domains, origin)?;
    let form = if agent.lead_form_fields.is_empty() {
        leads::form::default_form()
    } else {
        agent.lead_form_fields.clone()
    };
    let valid = leads::form::validate(&form, &submission.fields)?;
    let captured = leads::capture(&tx, &agent, &submission, &valid).await?;
    tx.commit().await?;
    drop(client);
    tracing::info!(%agent_id, lead_id = %captured.lead_id, duplicate = captured.duplicate, "lead captured");
    if let Err(err) = deps.relay.run(&deps.deps.db, 20).await {
        // The scheduler's sweep sends them within a minute.
        tracing::warn!(
            error = format!("{err:#}"),
            "outbox relay after the lead failed"
        );
    }
    let status = if captured.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    http::json(status, &captured)
}
