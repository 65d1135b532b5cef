//! The route table: method, path template and the route it names. The OpenAPI document is
//! checked against this table by the tests, so the two cannot drift apart.

use chatpad::{ApiError, ApiResult};
use lambda_http::http::Method;
use uuid::Uuid;

/// Every operation of the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    OpenApi,
    Me,
    ListModels,
    ListPlans,
    GetSubscription,
    ListAgents,
    CreateAgent,
    GetAgent,
    UpdateAgent,
    DeleteAgent,
    ListHelpArticles,
    CreateHelpArticle,
    GetHelpArticle,
    UpdateHelpArticle,
    DeleteHelpArticle,
    ListTeam,
    InviteMember,
    ChangeMemberRole,
    RemoveMember,
    AcceptInvitation,
    ListApiKeys,
    CreateApiKey,
    RevokeApiKey,
    ListSecurityLogs,
    ListKnowledgeSources,
    CreateKnowledgeUpload,
    CreateKnowledgeSource,
    GetKnowledgeSource,
    UpdateKnowledgeSource,
    ResyncKnowledgeSource,
    DeleteKnowledgeSource,
    ListKnowledgeChunks,
    ListLeads,
    UpdateLead,
    ExportLeads,
    ListWebhooks,
    CreateWebhook,
    GetWebhook,
    UpdateWebhook,
    DeleteWebhook,
    RotateWebhookSecret,
    ListWebhookDeliveries,
    GetWebhookDelivery,
    ReplayWebhookDelivery,
    ListKnowledgeGaps,
    UpdateKnowledgeGap,
    ListAttention,
    StartTakeover,
    EndTakeover,
    AssignConversation,
}

/// (method, path template, route). `{name}` segments are UUIDs.
pub const ROUTES: &[(Method, &str, Route)] = &[
    (Method::GET, "/v1/openapi.json", Route::OpenApi),
    (Method::GET, "/v1/me", Route::Me),
    (Method::GET, "/v1/models", Route::ListModels),
    (Method::GET, "/v1/plans", Route::ListPlans),
    (Method::GET, "/v1/subscription", Route::GetSubscription),
    (Method::GET, "/v1/agents", Route::ListAgents),
    (Method::POST, "/v1/agents", Route::CreateAgent),
    (Method::GET, "/v1/agents/{agentId}", Route::GetAgent),
    (Method::PATCH, "/v1/agents/{agentId}", Route::UpdateAgent),
    (Method::DELETE, "/v1/agents/{agentId}", Route::DeleteAgent),
    (
        Method::GET,
        "/v1/agents/{agentId}/help-articles",
        Route::ListHelpArticles,
    ),
    (
        Method::POST,
        "/v1/agents/{agentId}/help-articles",
        Route::CreateHelpArticle,
    ),
    (
        Method::GET,
        "/v1/help-articles/{articleId}",
        Route::GetHelpArticle,
    ),
    (
        Method::PATCH,
        "/v1/help-articles/{articleId}",
        Route::UpdateHelpArticle,
    ),
    (
        Method::DELETE,
        "/v1/help-articles/{articleId}",
        Route::DeleteHelpArticle,
    ),
    (Method::GET, "/v1/team", Route::ListTeam),
    (Method::POST, "/v1/team", Route::InviteMember),
    (
        Method::PATCH,
        "/v1/team/{memberId}",
        Route::ChangeMemberRole,
    ),
    (Method::DELETE, "/v1/team/{memberId}", Route::RemoveMember),
    (
        Method::POST,
        "/v1/invitations/{invitationId}/accept",
        Route::AcceptInvitation,
    ),
    (Method::GET, "/v1/api-keys", Route::ListApiKeys),
    (Method::POST, "/v1/api-keys", Route::CreateApiKey),
    (Method::DELETE, "/v1/api-keys/{keyId}", Route::RevokeApiKey),
    (Method::GET, "/v1/security-logs", Route::ListSecurityLogs),
    (
        Method::GET,
        "/v1/agents/{agentId}/knowledge",
        Route::ListKnowledgeSources,
    ),
    (
        Method::POST,
        "/v1/agents/{agentId}/knowledge/uploads",
        Route::CreateKnowledgeUpload,
    ),
    (
        Method::POST,
        "/v1/agents/{agentId}/knowledge",
        Route::CreateKnowledgeSource,
    ),
    (
        Method::GET,
        "/v1/knowledge/{sourceId}",
        Route::GetKnowledgeSource,
    ),
    (
        Method::PATCH,
        "/v1/knowledge/{sourceId}",
        Route::UpdateKnowledgeSource,
    ),
    (
        Method::POST,
        "/v1/knowledge/{sourceId}/sync",
        Route::ResyncKnowledgeSource,
    ),
    (
        Method::DELETE,
        "/v1/knowledge/{sourceId}",
        Route::DeleteKnowledgeSource,
    ),
    (
        Method::GET,
        "/v1/knowledge/{sourceId}/chunks",
        Route::ListKnowledgeChunks,
    ),
    (Method::GET, "/v1/leads", Route::ListLeads),
    (Method::GET, "/v1/leads/export", Route::ExportLeads),
    (Method::PATCH, "/v1/leads/{leadId}", Route::UpdateLead),
    (Method::GET, "/v1/webhooks", Route::ListWebhooks),
    (Method::POST, "/v1/webhooks", Route::CreateWebhook),
    (Method::GET, "/v1/webhooks/{webhookId}", Route::GetWebhook),
    (
        Method::PATCH,
        "/v1/webhooks/{webhookId}",
        Route::UpdateWebhook,
    ),
    (
        Method::DELETE,
        "/v1/webhooks/{webhookId}",
        Route::DeleteWebhook,
    ),
    (
        Method::POST,
        "/v1/webhooks/{webhookId}/rotate-secret",
        Route::RotateWebhookSecret,
    ),
    (
        Method::GET,
        "/v1/webhooks/{webhookId}/deliveries",
        Route::ListWebhookDeliveries,
    ),
    (
        Method::GET,
        "/v1/webhook-deliveries/{deliveryId}",
        Route::GetWebhookDelivery,
    ),
    (
        Method::POST,
        "/v1/webhook-deliveries/{deliveryId}/replay",
        Route::ReplayWebhookDelivery,
    ),
    (
        Method::GET,
        "/v1/agents/{agentId}/knowledge-gaps",
        Route::ListKnowledgeGaps,
    ),
    (
        Method::PATCH,
        "/v1/knowledge-gaps/{gapId}",
        Route::UpdateKnowledgeGap,
    ),
    (
        Method::GET,
        "/v1/conversations/attention",
        Route::ListAttention,
    ),
    (
        Method::POST,
        "/v1/conversations/{conversationId}/takeover",
        Route::StartTakeover,
    ),
    (
        Method::POST,
        "/v1/conversations/{conversationId}/takeover/end",
        Route::EndTakeover,
    ),
    (
        Method::PUT,
        "/v1/conversations/{conversationId}/assignee",
        Route::AssignConversation,
    ),
];

/// Finds the route for `method` and `path` and parses its UUID parameters.
/// Unknown paths (or malformed ids) are 404; known paths with another method are 405.
pub fn resolve(method: &Method, path: &str) -> ApiResult<(Route, Vec<Uuid>)> {
    let path = path.trim_end_matches('/');
    let segments: Vec<&str> = path.split('/').collect();
    let mut path_known = false;
    for (route_method, template, route) in ROUTES {
        let pattern: Vec<&str> = template.split('/').collect();
        if pattern.len() != segments.len() {
            continue;
        }
        let mut params = Vec::new();
        let matches = pattern.iter().zip(&segments).all(|(p, s)| {
            if p.starts_with('{') {
                Uuid::parse_str(s).map(|id| params.push(id)).is_ok()
            } else {
                p == s
            }
        });
        if !matches {
            continue;
        }
        if route_method == method {
            return Ok((*route, params));
        }
        path_known = true;
    }
    if path_known {
        Err(ApiError::MethodNotAllowed)
    } else {
        Err(ApiError::NotFound {
            code: "route_not_found",
            message: format!("no such endpoint: {method} {path}"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_resolve_with_their_parameters() {
        let id = Uuid::new_v4();
        assert_eq!(
            resolve(&Method::GET, "/v1/agents").unwrap(),
            (Route::ListAgents, vec![])
        );
        assert_eq!(
            resolve(&Method::PATCH, &format!("/v1/agents/{id}/")).unwrap(),
            (Route::UpdateAgent, vec![id])
        );
        assert!(matches!(
            resolve(&Method::PUT, "/v1/agents"),
            Err(ApiError::MethodNotAllowed)
        ));
        assert_eq!(
            resolve(&Method::GET, "/v1/agents/not-a-uuid")
                .unwrap_err()
                .status(),
            404
        );
        assert_eq!(
            resolve(&Method::GET, "/v2/nothing").unwrap_err().status(),
            404
        );
    }
}
