//! Cursor pagination. A cursor is opaque to callers: base64url of the last row's sort value and
//! id, so pages stay stable while rows are added (keyset pagination, no OFFSET).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::{ApiError, ApiResult};

/// Page size when the caller does not say.
pub const DEFAULT_LIMIT: i64 = 20;
/// The largest page a caller may ask for.
pub const MAX_LIMIT: i64 = 100;

/// The paging parameters of every listing, for the OpenAPI document (handlers read them with
/// [`limit`] and [`Cursor::decode`]).
#[derive(Debug, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageParams {
    /// `nextCursor` of the previous page
    #[param(pattern = "^[A-Za-z0-9_-]+$")]
    pub cursor: Option<String>,
    /// Page size (default 20)
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<i64>,
}

/// A page of results and the cursor of the next one.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Page<T> {
    pub data: Vec<T>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The decoded position after which a page starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The sort column's value of the last row (a string, number or timestamp as JSON).
    pub value: Value,
    pub id: Uuid,
}

impl Cursor {
    /// The opaque form handed to callers.
    pub fn encode(&self) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(self).expect("cursor serialises"))
    }

    /// Parses a caller's cursor; a tampered one is a 400, not a 500.
    pub fn decode(text: &str) -> ApiResult<Self> {
        URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .ok_or_else(|| ApiError::BadRequest {
                code: "invalid_cursor",
                message: "the cursor is not one this API issued".into(),
            })
    }
}

/// Validates a requested page size.
pub fn limit(requested: Option<i64>) -> ApiResult<i64> {
    match requested {
        None => Ok(DEFAULT_LIMIT),
        Some(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::invalid_field(
            "limit",
            format!("must be between 1 and {MAX_LIMIT}"),
        )),
    }
}

/// The position after which a page of a listing sorted by creation time (newest first)
/// starts: the last row's time and id, or `None` for the first page.
pub fn time_cursor(cursor: Option<&str>) -> ApiResult<Option<(DateTime<Utc>, Uuid)>> {
    let Some(text) = cursor else {
        return Ok(None);
    };
    let cursor = Cursor::decode(text)?;
    let time = cursor
        .value
        .as_str()
        .and_then(|t| t.parse::<DateTime<Utc>>().ok())
        .ok_or_else(|| ApiError::BadRequest {
            code: "invalid_cursor",
            message: "the cursor is not one this API issued".into(),
        })?;
    Ok(Some((time, cursor.id)))
}

/// The cursor of a row of a listing sorted by creation time (see [`time_cursor`]).
pub fn time_cursor_of(created_at: DateTime<Utc>, id: Uuid) -> Cursor {
    Cursor {
        value: created_at.to_rfc3339().into(),
        id,
    }
}

/// Splits one extra fetched row off `rows` into the next cursor (fetch `limit + 1` rows).
pub fn page<T>(mut rows: Vec<T>, limit: i64, cursor_of: impl Fn(&T) -> Cursor) -> Page<T> {
    let next_cursor = if rows.len() as i64 > limit {
        rows.truncate(limit as usize);
        rows.last().map(|last| cursor_of(last).encode())
    } else {
        None
    };
    Page {
        data: rows,
        next_cursor,
    }
}

/// A sort order over one whitelisted column, `name` or `-name` for descending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    pub column: &'static str,
    pub descending: bool,
}

impl Sort {
    /// Parses `sort` against the allowed columns; the first one, descending, is the default.
    pub fn parse(requested: Option<&str>, allowed: &[&'static str]) -> ApiResult<Self> {
        let Some(text) = requested else {
            return Ok(Sort {
                column: allowed[0],
                descending: true,
            });
        };
        let (descending, name) = text.strip_prefix('-').map_or((false, text), |n| (true, n));
        let column = allowed.iter().find(|c| **c == name).ok_or_else(|| {
            ApiError::invalid_field(
                "sort",
                format!(
                    "must be one of {} (prefix - for descending)",
                    allowed.join(", ")
                ),
            )
        })?;
        Ok(Sort { column, descending })
    }

    /// `ORDER BY` for this sort with `id` as the tie-breaker.
    pub fn order_by(&self) -> String {
        let dir = if self.descending { "DESC" } else { "ASC" };
        format!("{col} {dir}, id {dir}", col = self.column)
    }

    /// The keyset condition for rows after `cursor`, using bind parameters `$value` and `$id`
    /// (numbers given); the value is compared as text cast back to the column's type.
    pub fn after(&self, value_param: usize, id_param: usize) -> String {
        let op = if self.descending { "<" } else { ">" };
        format!(
            "({col}, id) {op} (${value_param}::text::{cast}, ${id_param})",
            col = self.column,
            cast = if self.column.ends_with("_at") {
                "timestamptz"
            } else {
                "text"
            }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_page_parameters_are_the_ones_enforced() {
        use utoipa::IntoParams;
        let params = serde_json::to_value(PageParams::into_params(|| None)).unwrap();
        let limit = &params[1];
        assert_eq!(limit["name"], "limit");
        assert_eq!(limit["schema"]["minimum"], 1);
        assert_eq!(limit["schema"]["maximum"], MAX_LIMIT);
        assert!(
            limit["description"]
                .as_str()
                .unwrap()
                .contains(&format!("default {DEFAULT_LIMIT}"))
        );
        // The documented alphabet is base64url's, which `Cursor::encode` writes.
        assert_eq!(params[0]["schema"]["pattern"], "^[A-Za-z0-9_-]+$");
        let issued = Cursor {
            value: Value::String("2026-11-25T00:00:00Z".into()),
            id: Uuid::new_v4(),
        }
        .encode();
        assert!(
            issued
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn cursors_round_trip_and_tampering_is_a_client_error() {
        let cursor = Cursor {
            value: Value::String("2026-11-25T00:00:00Z".into()),
            id: Uuid::new_v4(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()).unwrap(), cursor);
        assert_eq!(Cursor::decode("garbage!").unwrap_err().status(), 400);
    }

    #[test]
    fn sorts_are_whitelisted() {
        let allowed = ["created_at", "name"];
        assert_eq!(
            Sort::parse(None, &allowed).unwrap(),
            Sort {
                column: "created_at",
                descending: true
            }
        );
        assert_eq!(
            Sort::parse(Some("name"), &allowed).unwrap(),
            Sort {
                column: "name",
                descending: false
            }
        );
        assert_eq!(
            Sort::parse(Some("-name"), &allowed).unwrap().order_by(),
            "name DESC, id DESC"
        );
        assert_eq!(
            Sort::parse(Some("password; DROP TABLE x"), &allowed)
                .unwrap_err()
                .status(),
            422
        );
    }

    #[test]
    fn a_page_keeps_limit_rows_and_points_after_the_last() {
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        let p = page(ids.clone(), 2, |id| Cursor {
            value: Value::Null,
            id: *id,
        });
        assert_eq!(p.data, ids[..2]);
        assert_eq!(
            Cursor::decode(p.next_cursor.as_deref().unwrap())
                .unwrap()
                .id,
            ids[1]
        );
        assert!(
            page(ids, 3, |id| Cursor {
                value: Value::Null,
                id: *id
            })
            .next_cursor
            .is_none()
        );
    }
}
