//! The OpenAPI 3.1 document, generated from the handlers' annotations. Every operation also
//! documents the one error shape for the statuses the API uses.

use chatpad::agents::help_articles::{HelpArticle, HelpArticleFields};
use chatpad::agents::{
    Agent, AgentFields, AgentStatus, Appearance, DarkMode, LauncherIcon, LeadFieldKind,
    LeadFormField, Model, RetrievalSettings, WidgetPosition,
};
use chatpad::auth::key_management::{ApiKeyInfo, CreatedApiKey, NewApiKey};
use chatpad::auth::security_log::SecurityLogEntry;
use chatpad::billing::{Features, Limits, Plan, SubscriptionSummary, UsageSummary};
use chatpad::chat::gaps::KnowledgeGap;
use chatpad::knowledge::files::{UploadRequest, UploadTicket};
use chatpad::knowledge::sources::{ChunkView, NewSource, Progress, QaPair, Source, SourceChanges};
use chatpad::team::{Invitation, Role, RoleChange, TeamMember};
use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Response, ResponseBuilder, content::ContentBuilder};
use utoipa::{Modify, OpenApi, ToSchema};

use chatpad::leads::{Lead, LeadChanges};
use chatpad::webhooks::deliveries::{Attempt, Delivery, DeliveryDetail};
use chatpad::webhooks::endpoints::{NewWebhook, SecretRotation, Webhook, WebhookChanges};
use chatpad::webhooks::events::EventType;

use chatpad::takeover::{EndAction, InboxConversation, Takeover};

use crate::routes::{
    agents, api_keys, conversations, help_articles, knowledge, knowledge_gaps, leads, meta,
    security_logs, team, webhooks,
};

/// The error body of every 4xx/5xx response.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorResponse {
    pub error: ErrorDetail,
    pub request_id: String,
}

/// A stable `code`, a human `message` and, for validation errors, per-field `details`.
#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "ChatPad management API", version = "1.0.0",
         description = "Manage agents, their knowledge, help articles, team members, API keys, webhooks, leads and see plans, usage and security logs. \
Authenticate with `Authorization: Bearer <JWT>` (a signed-in user) or `Bearer <API key>` (scoped). \
Signed-in users act in their own account unless `X-Account-Id` names another account they belong to."),
    paths(
        meta::me, meta::list_models, meta::list_plans, meta::get_subscription,
        agents::list_agents, agents::create_agent, agents::get_agent, agents::update_agent, agents::delete_agent,
        help_articles::list_help_articles, help_articles::create_help_article, help_articles::get_help_article,
        help_articles::update_help_article, help_articles::delete_help_article,
        team::list_team, team::invite_member, team::change_member_role, team::remove_member, team::accept_invitation,
        api_keys::list_api_keys, api_keys::create_api_key, api_keys::revoke_api_key,
        security_logs::list_security_logs,
        knowledge::list_sources, knowledge::create_upload, knowledge::create_source, knowledge::get_source,
        knowledge::update_source, knowledge::resync_source, knowledge::delete_source, knowledge::list_chunks,
        leads::list_leads, leads::update_lead, leads::export_leads,
        webhooks::list_webhooks, webhooks::create_webhook, webhooks::get_webhook, webhooks::update_webhook,
        webhooks::delete_webhook, webhooks::rotate_webhook_secret, webhooks::list_webhook_deliveries,
        webhooks::get_webhook_delivery, webhooks::replay_webhook_delivery,
        knowledge_gaps::list_knowledge_gaps, knowledge_gaps::update_knowledge_gap,
        conversations::list_attention, conversations::start_takeover, conversations::end_takeover,
        conversations::assign,
    ),
    components(schemas(
        ErrorResponse, ErrorDetail, Agent, AgentFields, AgentStatus, Appearance, DarkMode, LauncherIcon,
        LeadFieldKind, LeadFormField, RetrievalSettings, WidgetPosition, Model, HelpArticle, HelpArticleFields, TeamMember,
        Invitation, Role, RoleChange, ApiKeyInfo, CreatedApiKey, NewApiKey, SecurityLogEntry, Plan, Limits,
        Features, SubscriptionSummary, UsageSummary, meta::Me, meta::AccountMembership,
        Source, Progress, NewSource, QaPair, SourceChanges, ChunkView, UploadRequest, UploadTicket,
        Lead, LeadChanges, Webhook, NewWebhook, WebhookChanges, SecretRotation, EventType, Delivery, DeliveryDetail, Attempt,
        KnowledgeGap, knowledge_gaps::GapChange,
        InboxConversation, Takeover, EndAction, conversations::TakeoverEnd, conversations::Assignment,
        conversations::Assigned,
    )),
    modifiers(&CommonResponses),
)]
pub struct ApiDoc;

/// The error statuses any authenticated operation can answer, and the bearer scheme.
struct CommonResponses;

const ERRORS: &[(&str, &str)] = &[
    (
        "400",
        "Malformed request (not JSON, wrong types, bad cursor)",
    ),
    ("401", "Missing or invalid credentials"),
    ("403", "Role, scope or plan does not allow this"),
    ("404", "Not found, or not visible to the caller"),
    ("409", "Conflicts with existing data"),
    ("413", "Body too large"),
    ("422", "A field is invalid; details name the fields"),
    ("429", "Rate limited; see Retry-After"),
    ("500", "Internal error (logged with the request id)"),
];

impl Modify for CommonResponses {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT or API key")
                    .build(),
            ),
        );
        for item in doc.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.post,
                &mut item.patch,
                &mut item.delete,
                &mut item.put,
            ]
            .into_iter()
            .flatten()
            {
                for (status, description) in ERRORS {
                    operation
                        .responses
                        .responses
                        .entry((*status).to_owned())
                        .or_insert_with(|| error_response(description));
                }
            }
        }
    }
}

fn error_response(description: &str) -> RefOr<Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(utoipa::openapi::Ref::from_schema_name(
                        "ErrorResponse",
                    )))
                    .build(),
            )
            .build(),
    )
}
