//! Team members: owners share their account with people in roles (super_admin, admin,
//! manager, member, client). Invitations are pending until the invited user accepts them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio_postgres::Row;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::db::{self, GenericClient};
use crate::{ApiError, ApiResult};

/// A role in an account, from most to least powerful.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    SuperAdmin,
    Admin,
    Manager,
    Member,
    Client,
}

impl Role {
    /// The name stored in `team_members.role`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::SuperAdmin => "super_admin",
            Role::Admin => "admin",
            Role::Manager => "manager",
            Role::Member => "member",
            Role::Client => "client",
        }
    }

    fn parse(text: &str) -> Role {
        match text {
            "super_admin" => Role::SuperAdmin,
            "admin" => Role::Admin,
            "manager" => Role::Manager,
            "member" => Role::Member,
            _ => Role::Client,
        }
    }
}

/// A member or a pending invitation.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TeamMember {
    pub id: Uuid,
    pub account_id: Uuid,
    /// The user, once the invitation is accepted.
    pub user_id: Option<Uuid>,
    pub email: Option<String>,
    pub role: Role,
    /// `pending` or `active`.
    pub status: String,
    pub invited_at: DateTime<Utc>,
    pub accepted_at: Option<DateTime<Utc>>,
}

/// An invitation to send.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Invitation {
    #[schema(format = Email, max_length = 320)]
    pub email: String,
    pub role: Role,
}

/// A role change.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RoleChange {
    pub role: Role,
}

const COLUMNS: &str = "tm.id, tm.owner_id, tm.member_id, coalesce(u.email, tm.invited_email) AS email, tm.role, tm.status, tm.created_at, tm.accepted_at";

fn from_row(row: &Row) -> TeamMember {
    TeamMember {
        id: row.get("id"),
        account_id: row.get("owner_id"),
        user_id: row.get("member_id"),
        email: row.get("email"),
        role: Role::parse(row.get("role")),
        status: row.get("status"),
        invited_at: row.get("created_at"),
        accepted_at: row.get("accepted_at"),
    }
}

/// A syntactically plausible email address (the invitation link proves it is real).
pub fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && email.len() <= 320
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && !domain.contains('@')
}

/// Invites `email` into `account` (admins and above; `super_admin` only by platform admins).
pub async fn invite(
    tx: &impl GenericClient,
    account: Uuid,
    invitation: &Invitation,
) -> ApiResult<TeamMember> {
    let email = invitation.email.trim().to_lowercase();
    if !valid_email(&email) {
        return Err(ApiError::invalid_field(
            "email",
            "is not a valid email address",
        ));
    }
    let row = tx
        .query_one(
            &format!(
                "WITH tm AS (INSERT INTO team_members (owner_id, invited_email, role, invited_by)
                             VALUES ($1, $2, $3, auth.uid()) RETURNING *)
                 SELECT {COLUMNS} FROM tm LEFT JOIN users u ON u.id = tm.member_id"
            ),
            &[&account, &email, &invitation.role.as_str()],
        )
        .await?;
    Ok(from_row(&row))
}

/// The account's members and pending invitations.
pub async fn list(tx: &impl GenericClient, account: Uuid) -> ApiResult<Vec<TeamMember>> {
    let rows = tx
        .query(
            &format!(
                "SELECT {COLUMNS} FROM team_members tm LEFT JOIN users u ON u.id = tm.member_id
                 WHERE tm.owner_id = $1 ORDER BY tm.created_at, tm.id"
            ),
            &[&account],
        )
        .await?;
    Ok(rows.iter().map(from_row).collect())
}

/// Changes a member's role.
pub async fn change_role(tx: &impl GenericClient, id: Uuid, role: Role) -> ApiResult<TeamMember> {
    change_one(
        tx,
        id,
        "UPDATE team_members SET role = $2 WHERE id = $1 RETURNING *",
        &[&id, &role.as_str()],
    )
    .await
}

/// Removes a member or withdraws an invitation.
pub async fn remove(tx: &impl GenericClient, id: Uuid) -> ApiResult<TeamMember> {
    change_one(
        tx,
        id,
        "DELETE FROM team_members WHERE id = $1 RETURNING *",
        &[&id],
    )
    .await
}

/// Runs `change` (a statement `RETURNING *` on one team row) and returns the row as it ended up,
/// or 403/404 when the row is out of the caller's reach.
async fn change_one(
    tx: &impl GenericClient,
    id: Uuid,
    change: &str,
    params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
) -> ApiResult<TeamMember> {
    let sql = format!(
        "WITH tm AS ({change}) SELECT {COLUMNS} FROM tm LEFT JOIN users u ON u.id = tm.member_id"
    );
    match tx.query_opt(&sql, params).await? {
        Some(row) => Ok(from_row(&row)),
        None => Err(db::not_found_or_forbidden(tx, "team_members", id, "team member").await),
    }
}

/// Accepts an invitation addressed to the caller's email.
pub async fn accept(tx: &impl GenericClient, id: Uuid) -> ApiResult<TeamMember> {
    let row = tx
        .query_one(
            &format!(
                "WITH tm AS (SELECT * FROM accept_invitation($1))
                 SELECT {COLUMNS} FROM tm LEFT JOIN users u ON u.id = tm.member_id WHERE tm.id IS NOT NULL"
            ),
            &[&id],
        )
        .await;
    match row {
        Ok(row) => Ok(from_row(&row)),
        Err(err) if err.as_db_error().is_none() => Err(ApiError::not_found("invitation")),
        Err(err) => Err(err.into()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn emails() {
        for ok in ["a@b.co", "first.last+tag@example.com"] {
            assert!(super::valid_email(ok), "{ok}");
        }
        for bad in [
            "", "a", "a@b", "@b.co", "a@.co", "a b@c.de", "a@b.co.", "a@b@c.de",
        ] {
            assert!(!super::valid_email(bad), "{bad}");
        }
    }
}
