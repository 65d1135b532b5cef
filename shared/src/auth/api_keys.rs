//! API keys: `cpk_live_<32 random base62><6 base62 CRC-32>`.
//!
//! - 32 base62 characters carry about 190 bits of randomness.
//! - The CRC-32 checksum lets us reject typos and random probes without a database query.
//! - Only an HMAC-SHA256 of the whole key (keyed with a server-side pepper) and a display
//!   prefix (`cpk_live_` + the first 8 random characters) are stored. The prefix is the lookup
//!   handle; the hash is then compared in constant time.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use rand::Rng;
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use uuid::Uuid;

use super::Caller;
use super::security_log::{self, SecurityEvent};
use crate::ApiResult;
use crate::db;

/// Marks live keys (a `cpk_test_` kind is reserved for sandbox keys).
pub const LIVE_PREFIX: &str = "cpk_live_";
const RANDOM_LEN: usize = 32;
const CHECKSUM_LEN: usize = 6;
const DISPLAY_RANDOM_LEN: usize = 8;
const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// The scopes a key can hold; `admin` implies all others.
pub const SCOPES: &[&str] = &[
    "chat:write",
    "leads:read",
    "leads:write",
    "knowledge:read",
    "knowledge:write",
    "agents:read",
    "agents:write",
    "admin",
];

/// A freshly generated key. The plaintext is shown to its creator once and never stored.
#[derive(Debug)]
pub struct GeneratedKey {
    pub plaintext: SecretString,
    pub prefix: String,
    pub hash: [u8; 32],
}

/// Generates a new live key and what to store for it.
pub fn generate(pepper: &SecretString) -> GeneratedKey {
    let mut rng = rand::rng();
    let random: String = (0..RANDOM_LEN)
        .map(|_| BASE62[rng.random_range(0..62)] as char)
        .collect();
    let key = format!("{LIVE_PREFIX}{random}{}", checksum(&random));
    GeneratedKey {
        prefix: display_prefix(&random),
        hash: hash(pepper, &key),
        plaintext: SecretString::from(key),
    }
}

fn display_prefix(random: &str) -> String {
    format!("{LIVE_PREFIX}{}", &random[..DISPLAY_RANDOM_LEN])
}

fn checksum(random: &str) -> String {
    let mut n = crc32fast::hash(random.as_bytes()) as u64;
    let mut out = [b'0'; CHECKSUM_LEN];
    for slot in out.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(out.to_vec()).expect("base62 is ASCII")
}

/// The stored form of a key: HMAC-SHA256 keyed with the pepper.
pub fn hash(pepper: &SecretString, key: &str) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(pepper.expose_secret().as_bytes())
        .expect("HMAC takes any key length");
    mac.update(key.as_bytes());
    mac.finalize().into_bytes().into()
}

/// Checks shape and checksum; returns the display prefix used to look the key up.
pub fn parse(candidate: &str) -> Option<String> {
    let rest = candidate.strip_prefix(LIVE_PREFIX)?;
    if rest.len() != RANDOM_LEN + CHECKSUM_LEN || !rest.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let (random, check) = rest.split_at(RANDOM_LEN);
    (checksum(random) == check).then(|| display_prefix(random))
}

/// A key that passed verification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedKey {
    pub key_id: Uuid,
    pub owner_id: Uuid,
    pub scopes: Vec<String>,
    pub expires_at: Option<DateTime<Utc>>,
}

impl VerifiedKey {
    /// The caller this key acts as.
    pub fn caller(&self) -> Caller {
        Caller::ApiKey {
            user_id: self.owner_id,
            key_id: self.key_id,
            scopes: self.scopes.clone(),
        }
    }

    /// Whether the key holds `scope` (or `admin`).
    pub fn allows(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope || s == "admin")
    }
}

/// Why a key was refused. Callers get one generic message; the log gets the reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Malformed,
    Unknown,
    Revoked,
    Expired,
}

impl Rejection {
    fn as_str(self) -> &'static str {
        match self {
            Rejection::Malformed => "malformed",
            Rejection::Unknown => "unknown",
            Rejection::Revoked => "revoked",
            Rejection::Expired => "expired",
        }
    }
}

/// Where a request came from, for the security log.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestOrigin<'a> {
    pub ip: Option<std::net::IpAddr>,
    pub user_agent: Option<&'a str>,
}

/// Fails with `plan_limit_exceeded` unless `owner`'s plan includes API access (Advanced and
/// Pro): keys of an account that downgraded stop working until it upgrades again.
pub async fn require_api_access(tx: &impl db::GenericClient, owner: Uuid) -> ApiResult<()> {
    let api_access: bool = tx
        .query_one("SELECT api_access FROM account_plan($1)", &[&owner])
        .await?
        .get(0);
    if api_access {
        Ok(())
    } else {
        Err(crate::ApiError::PlanLimit {
            message: "API access is not included in this account's plan; the advanced plan \
                      includes it"
                .into(),
            details: serde_json::json!({ "limit": "api_access", "upgrade_to": "advanced" }),
        })
    }
}

/// An API caller of a public endpoint (widget-chat, create-widget-lead): verifies `token`,
/// records its use (or rejection) in its own transaction, then requires `scope`, a plan with
/// API access and `agent` in the key's account (404 otherwise, as for anyone else's agent).
/// Returns the key's id (for per-key rate limits).
pub async fn authorize_for_agent(
    db: &db::Database,
    pepper: &SecretString,
    token: &str,
    origin: RequestOrigin<'_>,
    agent: Uuid,
    scope: &str,
) -> ApiResult<Uuid> {
    let mut client = db.client().await?;
    let tx = db::begin_as(&mut client, &Caller::Anonymous).await?;
    let verified = verify(&tx, pepper, token, origin).await?;
    let checked = match &verified {
        Ok(key) => Some((
            require_api_access(&tx, key.owner_id).await,
            // Acting as the key's owner now: an agent of another account is invisible.
            tx.query_opt("SELECT 1 FROM agents WHERE id = $1", &[&agent])
                .await?
                .is_some(),
        )),
        Err(_) => None,
    };
    // The key's use (or rejection) is logged whatever follows.
    tx.commit().await?;
    let (key, (plan, owns_agent)) = match (verified, checked) {
        (Ok(key), Some(checked)) => (key, checked),
        _ => {
            return Err(crate::ApiError::unauthorized(
                "invalid_api_key",
                "the API key is invalid, revoked or expired",
            ));
        }
    };
    plan?;
    if !key.allows(scope) {
        return Err(crate::ApiError::forbidden(
            "insufficient_scope",
            format!("this API key lacks the {scope} scope"),
        ));
    }
    if !owns_agent {
        return Err(crate::agents::widget::agent_not_found());
    }
    Ok(key.key_id)
}

/// Verifies `candidate` inside `tx` (begun as [`Caller::Anonymous`]) and records the outcome:
/// a valid key's use (last used, security log, one API call of usage) or the rejection.
/// On success `tx` acts as the key's owner from then on. Commit `tx` in both cases.
pub async fn verify(
    tx: &db::Transaction<'_>,
    pepper: &SecretString,
    candidate: &str,
    origin: RequestOrigin<'_>,
) -> ApiResult<Result<VerifiedKey, Rejection>> {
    let outcome = check(tx, pepper, candidate).await?;
    match &outcome {
        Ok(key) => {
            db::act_as(tx, &key.caller()).await?;
            tx.execute(
                "SELECT public.record_api_key_use($1, $2::text::inet, $3)",
                &[
                    &key.key_id,
                    &origin.ip.map(|ip| ip.to_string()),
                    &origin.user_agent,
                ],
            )
            .await?;
        }
        Err((rejection, owner)) => {
            // A revoked or expired key still names its account: log it there, so the owner
            // sees the attempt. Unknown keys go to the platform-wide log.
            if let Some(owner) = owner {
                db::act_as(tx, &Caller::User { user_id: *owner }).await?;
            }
            let mut event = SecurityEvent::new(*owner, "api_key.rejected");
            event.ip = origin.ip;
            event.user_agent = origin.user_agent;
            event.details =
                serde_json::json!({ "reason": rejection.as_str(), "prefix": parse(candidate) });
            security_log::record(tx, &event).await?;
        }
    }
    Ok(outcome.map_err(|(rejection, _)| rejection))
}

async fn check(
    tx: &db::Transaction<'_>,
    pepper: &SecretString,
    candidate: &str,
) -> ApiResult<Result<VerifiedKey, (Rejection, Option<Uuid>)>> {
    let Some(prefix) = parse(candidate) else {
        return Ok(Err((Rejection::Malformed, None)));
    };
    let row = tx
        .query_opt(
            "SELECT id, user_id, key_hash, scopes, expires_at, revoked_at FROM public.find_api_key($1)",
            &[&prefix],
        )
        .await?;
    let Some(row) = row else {
        return Ok(Err((Rejection::Unknown, None)));
    };
    let stored: Vec<u8> = row.get("key_hash");
    if !bool::from(hash(pepper, candidate).as_slice().ct_eq(&stored)) {
        return Ok(Err((Rejection::Unknown, None)));
    }
    let owner_id: Uuid = row.get("user_id");
    if row.get::<_, Option<DateTime<Utc>>>("revoked_at").is_some() {
        return Ok(Err((Rejection::Revoked, Some(owner_id))));
    }
    let expires_at: Option<DateTime<Utc>> = row.get("expires_at");
    if expires_at.is_some_and(|at| at <= Utc::now()) {
        return Ok(Err((Rejection::Expired, Some(owner_id))));
    }
    Ok(Ok(VerifiedKey {
        key_id: row.get("id"),
        owner_id,
        scopes: row.get("scopes"),
        expires_at,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pepper() -> SecretString {
        SecretString::from("test-pepper")
    }

    #[test]
    fn generated_keys_parse_and_hash_stably() {
        let key = generate(&pepper());
        let text = key.plaintext.expose_secret();
        assert_eq!(text.len(), LIVE_PREFIX.len() + RANDOM_LEN + CHECKSUM_LEN);
        assert_eq!(parse(text).as_deref(), Some(key.prefix.as_str()));
        assert_eq!(hash(&pepper(), text), key.hash);
        assert_ne!(hash(&SecretString::from("other"), text), key.hash);
    }

    #[test]
    fn a_single_changed_character_fails_the_checksum() {
        let key = generate(&pepper());
        let text = key.plaintext.expose_secret().to_owned();
        let pos = LIVE_PREFIX.len() + 5;
        let replacement = if &text[pos..=pos] == "a" { "b" } else { "a" };
        let typo = format!("{}{}{}", &text[..pos], replacement, &text[pos + 1..]);
        assert_eq!(parse(&typo), None);
    }

    #[test]
    fn wrong_shapes_are_rejected() {
        for bad in [
            "",
            "cpk_live_",
            "sk_live_abc",
            "cpk_live_!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn two_keys_differ() {
        assert_ne!(generate(&pepper()).prefix, generate(&pepper()).prefix);
    }
}
