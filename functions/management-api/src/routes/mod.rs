//! Route handlers: parse → domain → audit → render. One file per resource.

pub mod agents;
pub mod api_keys;
pub mod conversations;
pub mod help_articles;
pub mod knowledge;
pub mod knowledge_gaps;
pub mod leads;
pub mod meta;
pub mod security_logs;
pub mod team;
pub mod webhooks;

use chatpad::ApiResult;
use lambda_http::{Body, Response};

use crate::context::Ctx;
use crate::router::Route;

/// Runs the handler of `route`.
pub async fn dispatch(route: Route, ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    match route {
        Route::OpenApi => meta::openapi(),
        Route::Me => meta::me(ctx).await,
        Route::ListModels => meta::list_models(ctx).await,
        Route::ListPlans => meta::list_plans(ctx).await,
        Route::GetSubscription => meta::get_subscription(ctx).await,
        Route::ListAgents => agents::list_agents(ctx).await,
        Route::CreateAgent => agents::create_agent(ctx).await,
        Route::GetAgent => agents::get_agent(ctx).await,
        Route::UpdateAgent => agents::update_agent(ctx).await,
        Route::DeleteAgent => agents::delete_agent(ctx).await,
        Route::ListHelpArticles => help_articles::list_help_articles(ctx).await,
        Route::CreateHelpArticle => help_articles::create_help_article(ctx).await,
        Route::GetHelpArticle => help_articles::get_help_article(ctx).await,
        Route::UpdateHelpArticle => help_articles::update_help_article(ctx).await,
        Route::DeleteHelpArticle => help_articles::delete_help_article(ctx).await,
        Route::ListTeam => team::list_team(ctx).await,
        Route::InviteMember => team::invite_member(ctx).await,
        Route::ChangeMemberRole => team::change_member_role(ctx).await,
        Route::RemoveMember => team::remove_member(ctx).await,
        Route::AcceptInvitation => team::accept_invitation(ctx).await,
        Route::ListApiKeys => api_keys::list_api_keys(ctx).await,
        Route::CreateApiKey => api_keys::create_api_key(ctx).await,
        Route::RevokeApiKey => api_keys::revoke_api_key(ctx).await,
        Route::ListSecurityLogs => security_logs::list_security_logs(ctx).await,
        Route::ListKnowledgeSources => knowledge::list_sources(ctx).await,
        Route::CreateKnowledgeUpload => knowledge::create_upload(ctx).await,
        Route::CreateKnowledgeSource => knowledge::create_source(ctx).await,
        Route::GetKnowledgeSource => knowledge::get_source(ctx).await,
        Route::UpdateKnowledgeSource => knowledge::update_source(ctx).await,
        Route::ResyncKnowledgeSource => knowledge::resync_source(ctx).await,
        Route::DeleteKnowledgeSource => knowledge::delete_source(ctx).await,
        Route::ListKnowledgeChunks => knowledge::list_chunks(ctx).await,
        Route::ListLeads => leads::list_leads(ctx).await,
        Route::UpdateLead => leads::update_lead(ctx).await,
        Route::ExportLeads => leads::export_leads(ctx).await,
        Route::ListWebhooks => webhooks::list_webhooks(ctx).await,
        Route::CreateWebhook => webhooks::create_webhook(ctx).await,
        Route::GetWebhook => webhooks::get_webhook(ctx).await,
        Route::UpdateWebhook => webhooks::update_webhook(ctx).await,
        Route::DeleteWebhook => webhooks::delete_webhook(ctx).await,
        Route::RotateWebhookSecret => webhooks::rotate_webhook_secret(ctx).await,
        Route::ListWebhookDeliveries => webhooks::list_webhook_deliveries(ctx).await,
        Route::GetWebhookDelivery => webhooks::get_webhook_delivery(ctx).await,
        Route::ReplayWebhookDelivery => webhooks::replay_webhook_delivery(ctx).await,
        Route::ListKnowledgeGaps => knowledge_gaps::list_knowledge_gaps(ctx).await,
        Route::UpdateKnowledgeGap => knowledge_gaps::update_knowledge_gap(ctx).await,
        Route::ListAttention => conversations::list_attention(ctx).await,
        Route::StartTakeover => conversations::start_takeover(ctx).await,
        Route::EndTakeover => conversations::end_takeover(ctx).await,
        Route::AssignConversation => conversations::assign(ctx).await,
    }
}

/// 204 No Content.
pub fn no_content() -> ApiResult<Response<Body>> {
    Ok(Response::builder()
        .status(204)
        .body(Body::Empty)
        .expect("static response"))
}
