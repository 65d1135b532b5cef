//! /v1/leads…: leads captured by the account's widgets — listing with filters, status changes
//! and CSV export. Members and above read them (API keys: `leads:read`); managers and above
//! change them (`leads:write`).

use chatpad::leads::{self, Lead, LeadChanges, LeadQuery};
use chatpad::pagination::Page;
use chatpad::{ApiResult, http};
use chrono::{DateTime, Utc};
use lambda_http::http::{StatusCode, header};
use lambda_http::{Body, Response};

use crate::context::Ctx;

/// The filters shared by the listing and the export.
fn filters<'a>(ctx: &'a Ctx<'_>) -> ApiResult<LeadQuery<'a>> {
    Ok(LeadQuery {
        agent: ctx.query_as("agentId", "an agent id (UUID)")?,
        status: ctx.query("status"),
        since: ctx.query_as::<DateTime<Utc>>("since", "an RFC 3339 time")?,
        until: ctx.query_as::<DateTime<Utc>>("until", "an RFC 3339 time")?,
    })
}

#[utoipa::path(get, path = "/v1/leads", tag = "leads", security(("bearer" = [])),
    params(
        ("agentId" = Option<uuid::Uuid>, Query, description = "Only this agent's leads"),
        ("status" = Option<String>, Query, description = "Only leads in this status: new, contacted, qualified, converted or lost"),
        ("since" = Option<DateTime<Utc>>, Query, description = "Created at or after (RFC 3339)"),
        ("until" = Option<DateTime<Utc>>, Query, description = "Created before (RFC 3339)"),
        chatpad::pagination::PageParams,
    ),
    responses((status = 200, description = "A page of leads, newest first", body = Page<Lead>)))]
pub async fn list_leads(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("leads:read")?;
    ctx.require_role("member").await?;
    let page = leads::list(
        ctx.tx,
        ctx.session.account,
        &filters(ctx)?,
        ctx.query("cursor"),
        ctx.query_as("limit", "an integer")?,
    )
    .await?;
    http::json(StatusCode::OK, &page)
}

#[utoipa::path(patch, path = "/v1/leads/{leadId}", tag = "leads", security(("bearer" = [])),
    params(("leadId" = uuid::Uuid, Path, description = "Lead id")),
    request_body = LeadChanges,
    responses((status = 200, description = "The updated lead", body = Lead)))]
pub async fn update_lead(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("leads:write")?;
    ctx.require_role("manager").await?;
    let changes: LeadChanges = ctx.body()?;
    let lead = leads::update(ctx.tx, ctx.params[0], &changes).await?;
    ctx.audit("lead.updated", "lead", lead.id).await?;
    http::json(StatusCode::OK, &lead)
}

#[utoipa::path(get, path = "/v1/leads/export", tag = "leads", security(("bearer" = [])),
    params(
        ("agentId" = Option<uuid::Uuid>, Query, description = "Only this agent's leads"),
        ("status" = Option<String>, Query, description = "Only leads in this status: new, contacted, qualified, converted or lost"),
        ("since" = Option<DateTime<Utc>>, Query, description = "Created at or after (RFC 3339)"),
        ("until" = Option<DateTime<Utc>>, Query, description = "Created before (RFC 3339)"),
    ),
    responses((status = 200, description = "The leads as CSV, oldest first (at most 50,000): fixed columns, then one per form field", content_type = "text/csv", body = String)))]
pub async fn export_leads(ctx: &Ctx<'_>) -> ApiResult<Response<Body>> {
    ctx.require_scope("leads:read")?;
    ctx.require_role("member").await?;
    let csv = leads::export_csv(ctx.tx, ctx.session.account, &filters(ctx)?).await?;
    ctx.audit("lead.exported", "lead", "csv").await?;
    Ok(Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/csv; charset=utf-8")
        .header(
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"leads.csv\"",
        )
        .body(Body::from(csv))
        .expect("static headers are valid"))
}
