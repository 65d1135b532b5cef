//! ChatPad's shared crate: the domain every Lambda function in `functions/` stands on.
//!
//! # Layout
//! - [`config`]: typed configuration read once per cold start from the environment.
//! - [`error`]: the one API error type, its JSON shape and HTTP status.
//! - [`http`]: request parsing and JSON responses for `lambda_http` handlers.
//! - [`agents`]: agents (chatbots), their help-center articles and the model catalogue.
//! - [`knowledge`]: knowledge sources, extraction, chunking and retrieval.
//! - [`chat`]: a visitor's question in, a grounded answer out (retrieval, prompt, model or
//!   extractive answer, knowledge gaps).
//! - [`llm`]: chat-model providers — OpenAI-compatible and Anthropic, both streamed.
//! - [`embeddings`]: text embeddings — all-MiniLM-L6-v2 in-process (feature `local-embeddings`,
//!   the `chatpad-minilm` crate), or an OpenAI-compatible API.
//! - [`team`]: sharing an account with team members in roles.
//! - [`takeover`]: a team member taking a conversation over from the bot, answering, handing
//!   it back; the inbox's "needs attention" list.
//! - [`realtime`]: conversation events pushed over WebSocket connections (API Gateway), visitor
//!   tokens, connections and presence in DynamoDB, catch-up from Postgres.
//! - [`leads`]: contact details captured by the widget's form; listing and CSV export.
//! - [`pagination`]: cursors, page sizes and whitelisted sorts of every listing.
//! - [`auth`]: who is calling — JWT verification, API keys, the claims handed to Postgres —
//!   and the security log.
//! - [`billing`]: plans, limits and usage metrics.
//! - [`crypto`]: sealing secrets that must be readable again (OAuth tokens, webhook secrets).
//! - [`db`]: the Postgres adapter — pool, per-request transactions carrying the caller's
//!   claims for row-level security, migrations.
//! - [`ratelimit`]: per-IP / per-caller limits as DynamoDB atomic counters.
//! - [`aws`]: SDK clients (S3, SQS, DynamoDB) honouring `AWS_ENDPOINT_URL` for the local stack.
//! - [`net`]: the SSRF guard — the only way to fetch URLs a customer gave (crawling, webhooks).
//! - [`outbox`]: relays jobs and events written with a change (transactional outbox) to SQS.
//! - [`sqs`]: the batch runner every SQS worker uses (partial batch failures).
//! - [`webhooks`]: customers' webhook endpoints, the events emitted to them, signed delivery.
//! - [`vendor_api`]: endpoint, retry and error-message helpers shared by the model clients.
//! - [`telemetry`]: tracing setup (JSON logs in Lambda).
//! - `testing` (feature `test-support`): a fresh database per test, connected as the app role.

pub mod agents;
pub mod auth;
pub mod aws;
pub mod billing;
pub mod chat;
pub mod config;
pub mod crypto;
pub mod db;
pub mod embeddings;
pub mod error;
pub mod http;
pub mod knowledge;
pub mod leads;
pub mod llm;
pub mod net;
pub mod outbox;
pub mod pagination;
pub mod ratelimit;
pub mod realtime;
pub mod sqs;
pub mod takeover;
pub mod team;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod vendor_api;
pub mod webhooks;

pub use error::{ApiError, ApiResult};

/// What every HTTP function holds for its whole life: configuration and the database pool.
/// Built once per cold start; the pool connects on first use.
#[derive(Debug, Clone)]
pub struct Deps {
    pub config: config::Config,
    pub db: db::Database,
}

impl Deps {
    /// Builds the dependencies from `config` without touching the network.
    pub fn new(config: config::Config) -> anyhow::Result<Self> {
        // One request at a time per Lambda environment: two connections cover a request plus
        // the occasional concurrent query.
        let db = db::Database::connect_lazy(&config.database_url, 2)?;
        Ok(Deps { config, db })
    }

    /// Reads the configuration from the environment and builds the dependencies.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::new(config::Config::from_env()?)
    }
}
