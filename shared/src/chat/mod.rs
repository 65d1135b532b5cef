//! Chat: a visitor's question in, the agent's grounded answer out.
//!
//! [`Chat::start`] validates the question, stores it in the visitor's conversation (starting
//! one, which counts against the plan's monthly conversations), embeds it and retrieves the
//! agent's best chunks, in one transaction that commits once the caller's rate limits (run
//! alongside) let the question in; the embedding runs while the writes do. [`Pending::answer`]
//! then produces the answer, handing each piece of text to a callback as it arrives (the
//! widget's stream), and stores it with its token counts, latency and the chunks it used.
//!
//! The answer comes from one of three places:
//! - the agent's **model**, through the provider the deployment configured (`llm`);
//! - the **extractive** responder when no provider is configured: the best matching sentences
//!   of the retrieved excerpts, quoted with their sources;
//! - the agent's **fallback** wording when nothing relevant was retrieved (or the model
//!   itself says the excerpts do not answer): it offers a person, and the question is
//!   recorded as a knowledge gap.
//!
//! Everything runs as the visitor (`Caller::Widget`): row-level security limits every query to
//! the agent and the visitor's own conversation.

pub mod attachments;
pub mod extractive;
pub mod gaps;
pub mod prompt;

use std::time::Instant;

use futures::FutureExt;
use futures::future::RemoteHandle;
use serde::Serialize;
use tracing::Instrument;
use uuid::Uuid;

use crate::agents::widget::{agent_not_found, check_origin};
use crate::auth::Caller;
use crate::auth::security_log::{self, SecurityEvent};
use crate::billing::{self, Usage};
use crate::db::{self, Database, GenericClient, Transaction};
use crate::embeddings::Embedder;
use crate::knowledge::search::{self, Hit, RetrievalMode};
use crate::llm::{Providers, Role, TokenUsage, Turn};
use crate::realtime::{self, Routed};
use crate::vendor_api::non_empty_env;
use crate::{ApiError, ApiResult};
use prompt::{Budgets, Citation, Persona};

/// Size limits of a conversation.
#[derive(Debug, Clone, Copy)]
pub struct ChatLimits {
    /// Longest visitor message, in characters (`CHAT_MAX_MESSAGE_CHARS`, default 4,000).
    pub max_message_chars: usize,
    /// Most messages in one conversation (`CHAT_MAX_CONVERSATION_MESSAGES`, default 200):
    /// past it the visitor starts a new conversation.
    pub max_conversation_messages: i64,
    pub budgets: Budgets,
}

impl Default for ChatLimits {
    fn default() -> Self {
        ChatLimits {
            max_message_chars: 4_000,
            max_conversation_messages: 200,
            budgets: Budgets::default(),
        }
    }
}

impl ChatLimits {
    /// Reads the limits from the environment (defaults above).
    pub fn from_env() -> anyhow::Result<Self> {
        let mut limits = ChatLimits::default();
        if let Some(text) = non_empty_env("CHAT_MAX_MESSAGE_CHARS") {
            limits.max_message_chars = text
                .parse()
                .ok()
                .filter(|&n| n > 0)
                .ok_or_else(|| anyhow::anyhow!("CHAT_MAX_MESSAGE_CHARS must be positive"))?;
        }
        if let Some(text) = non_empty_env("CHAT_MAX_CONVERSATION_MESSAGES") {
            limits.max_conversation_messages =
                text.parse().ok().filter(|&n| n > 1).ok_or_else(|| {
                    anyhow::anyhow!("CHAT_MAX_CONVERSATION_MESSAGES must be at least 2")
                })?;
        }
        Ok(limits)
    }
}

/// What a chat function holds for its life.
#[derive(Debug, Clone)]
pub struct Chat {
    pub db: Database,
    pub embedder: Embedder,
    pub providers: Providers,
    pub limits: ChatLimits,
}

/// A visitor's message.
#[derive(Debug, Clone)]
pub struct Question {
    pub agent_id: Uuid,
    pub visitor_id: String,
    /// Continue this conversation; a new one starts when absent (or when it was closed).
    pub conversation_id: Option<Uuid>,
    pub message: String,
    /// The page's `Origin` for browser calls, checked against the agent's allowed domains.
    pub origin: Option<String>,
    /// Files attached to the message, already checked (`attachments::AttachmentStore::verify`).
    pub attachments: Vec<attachments::Attachment>,
}

/// Where a question went.
#[derive(Debug)]
pub enum Outcome {
    /// The account is over its plan's monthly conversations: nothing was stored, the visitor
    /// gets the agent's fallback wording and the owner a security-log entry.
    Unavailable { message: String },
    /// Stored; a person has taken the conversation over, so the model is not called.
    HumanTakeover {
        conversation_id: Uuid,
        conversation_created: bool,
        user_message_id: Uuid,
        /// Realtime events the stored message wrote, to publish (the inbox sees it live).
        events: Vec<Routed>,
    },
    /// Stored and retrieved; [`Pending::answer`] produces the reply.
    Answer(Box<Pending>),
}

/// How a reply was produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AnsweredBy {
    /// The agent's model.
    Model,
    /// Quoted from the knowledge (no model configured).
    Extractive,
    /// Nothing relevant was found: the agent's fallback wording.
    Fallback,
}

/// A stored reply.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Reply {
    pub message_id: Uuid,
    pub text: String,
    pub citations: Vec<Citation>,
    pub answered_by: AnsweredBy,
    /// The widget should offer to bring in a person.
    pub offer_human: bool,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    /// From receiving the question to the stored reply, model time included.
    pub latency_ms: u64,
    /// Realtime events the stored reply wrote, to publish.
    #[serde(skip)]
    pub events: Vec<Routed>,
}

/// A question stored and its knowledge retrieved, waiting for its answer.
#[derive(Debug)]
pub struct Pending {
    pub conversation_id: Uuid,
    pub conversation_created: bool,
    pub user_message_id: Uuid,
    /// Realtime events the stored question wrote, to publish.
    pub events: Vec<Routed>,
    caller: Caller,
    agent: AgentSettings,
    question: String,
    history: Vec<Turn>,
    hits: Vec<Hit>,
    started: Instant,
}

/// The agent's settings that chat needs, read as the visitor.
#[derive(Debug, Clone)]
struct AgentSettings {
    id: Uuid,
    owner: Uuid,
    name: String,
    model: String,
    system_prompt: String,
    temperature: f32,
    fallback_message: String,
    retrieval_mode: RetrievalMode,
    match_threshold: f64,
    match_count: u32,
    embedding_model: String,
    allowed_domains: Vec<String>,
}

/// The question stored in its conversation (not yet committed).
struct StoredQuestion {
    conversation_id: Uuid,
    created: bool,
    takeover: bool,
    user_message_id: Uuid,
    history: Vec<Turn>,
    /// Realtime events the writes emitted.
    events: Vec<Routed>,
}

/// What a question came to before its transaction commits.
enum Prepared {
    /// The plan's monthly conversations are used up: the insert failed, the transaction is
    /// aborted.
    OverPlanLimit {
        agent: Box<AgentSettings>,
        details: serde_json::Value,
    },
    /// Stored; with the question (trimmed) and its knowledge unless a person has the
    /// conversation.
    Stored {
        agent: Box<AgentSettings>,
        stored: StoredQuestion,
        retrieved: Option<(String, Vec<Hit>)>,
    },
}

/// Most earlier messages read for the prompt (the token budget then trims them).
const HISTORY_MESSAGES: i64 = 40;

/// The visitor-facing message when the model provider fails.
pub const MODEL_UNAVAILABLE: &str = "Sorry, I can't answer right now. Please try again in a \
     moment, or ask to talk to a person.";

impl Chat {
    /// Checks and stores `question`, then retrieves the knowledge to answer it.
    ///
    /// `admission` — the caller's rate limits, round trips to DynamoDB — runs alongside that
    /// work, which happens in one transaction committed only once `admission` lets the
    /// question in: a refused question stores nothing (its work stops at the refusal), and an
    /// admitted one does not wait for its limits before its own work starts. The embedding
    /// (milliseconds of CPU, or a provider round trip) overlaps the writes too.
    pub async fn start(
        &self,
        question: Question,
        admission: impl Future<Output = ApiResult<()>>,
    ) -> ApiResult<Outcome> {
        let started = Instant::now();
        let caller = Caller::Widget {
            agent_id: question.agent_id,
            visitor_id: question.visitor_id.clone(),
        };
        let mut client = self.db.client().await?;
        let tx = db::begin_as(&mut client, &caller).await?;
        // A refusal stops the work where it is (dropping it rolls the transaction back); the
        // work's own errors wait for the limits, so even a bad request counts against them.
        let work = self.prepare(&tx, &caller, &question).map(Ok);
        let ((), prepared) = futures::future::try_join(admission, work).await?;
        let (agent, stored, retrieved) = match prepared? {
            Prepared::OverPlanLimit { agent, details } => {
                // The failed insert aborted the transaction: the log entry needs its own.
                drop(tx);
                self.log_plan_limit(&caller, &agent, details).await?;
                return Ok(Outcome::Unavailable {
                    message: agent.fallback_message,
                });
            }
            Prepared::Stored {
                agent,
                stored,
                retrieved,
            } => (agent, stored, retrieved),
        };
        tx.commit().await?;

        let Some((question, hits)) = retrieved else {
            return Ok(Outcome::HumanTakeover {
                conversation_id: stored.conversation_id,
                conversation_created: stored.created,
                user_message_id: stored.user_message_id,
                events: stored.events,
            });
        };
        Ok(Outcome::Answer(Box::new(Pending {
            conversation_id: stored.conversation_id,
            conversation_created: stored.created,
            user_message_id: stored.user_message_id,
            events: stored.events,
            caller,
            agent: *agent,
            question,
            history: stored.history,
            hits,
            started,
        })))
    }

    /// The work of [`Self::start`] inside its transaction: validate, store, embed, retrieve
    /// (unless a person has the conversation).
    ///
    /// The embedding (CPU, or a provider's round trip), the writes and, for a hybrid agent,
    /// the ranking of the question's words (it needs no embedding; on a second connection
    /// when one is free) all run at once; the vector ranking follows the embedding, beside
    /// the end of the word ranking, and the fusion both.
    async fn prepare(
        &self,
        tx: &Transaction<'_>,
        caller: &Caller,
        question: &Question,
    ) -> ApiResult<Prepared> {
        let message = question.message.trim().to_owned();
        validate(question, &message, &self.limits)?;
        let (embedding, stored) = tokio::join!(
            self.embedder.embed(std::slice::from_ref(&message)),
            self.store_and_rank(tx, caller, question, &message)
        );
        let (stored, word_ranking) = stored?;
        let (agent, stored) = match stored {
            Prepared::Stored { agent, stored, .. } if !stored.takeover => (agent, stored),
            // Over the plan's limit, or a person has the conversation: nothing to retrieve.
            other => return Ok(other),
        };

        if agent.embedding_model != self.embedder.model_id() {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "agent {} searches {} vectors but this function embeds with {}",
                agent.id,
                agent.embedding_model,
                self.embedder.model_id()
            )));
        }
        let embedding = embedding
            .map_err(|err| {
                tracing::error!(error = %err, "embedding the question failed");
                ApiError::Upstream {
                    code: "search_unavailable",
                    message: MODEL_UNAVAILABLE.into(),
                }
            })?
            .pop()
            .unwrap_or_default();
        let mut hits = match word_ranking {
            Some(word_ranking) => {
                let (by_meaning, by_words) = tokio::join!(
                    search::rank_by_meaning(
                        tx,
                        agent.id,
                        &embedding,
                        agent.match_threshold,
                        agent.match_count,
                    ),
                    async { word_ranking?.await }
                );
                search::fuse(&embedding, by_meaning?, by_words?, agent.match_count)
            }
            None => {
                search::search(
                    tx,
                    agent.id,
                    &embedding,
                    &message,
                    agent.retrieval_mode,
                    agent.match_threshold,
                    agent.match_count,
                )
                .await?
            }
        };
        // Nothing above the threshold: in hybrid mode keyword matches come back whatever their
        // similarity, but without one chunk close in meaning there is no grounded answer.
        let best = hits.iter().map(|h| h.similarity).reduce(f64::max);
        if best.is_none_or(|best| best < agent.match_threshold) {
            gaps::record(tx, agent.id, stored.conversation_id, &message, best).await?;
            hits.clear();
        }
        Ok(Prepared::Stored {
            agent,
            stored,
            retrieved: Some((message, hits)),
        })
    }

    /// Reads the agent's settings, then stores the question and, for a hybrid agent, starts
    /// ranking its words meanwhile on a second connection if one is free (`None` otherwise,
    /// and in vector mode: the search then ranks them itself; the ranking's own failure
    /// matters only once it is used).
    async fn store_and_rank(
        &self,
        tx: &Transaction<'_>,
        caller: &Caller,
        question: &Question,
        message: &str,
    ) -> ApiResult<(Prepared, Option<ApiResult<WordsUnderway>>)> {
        let agent = agent_settings(tx, question.agent_id).await?;
        check_origin(&agent.allowed_domains, question.origin.as_deref())?;
        let (agent_id, mode, count) = (agent.id, agent.retrieval_mode, agent.match_count);
        // Taking the connection (a pooled one is checked with a round trip) runs beside the
        // writes too.
        let ranking = async {
            if mode == RetrievalMode::Vector {
                return None;
            }
            match self.db.spare_client().await {
                Ok(Some(client)) => Some(Ok(start_ranking_words(
                    client,
                    caller.clone(),
                    agent_id,
                    message.to_owned(),
                    count,
                ))),
                Ok(None) => None,
                Err(err) => Some(Err(err)),
            }
        };
        let (stored, ranking) =
            tokio::join!(self.store_question(tx, question, message, agent), ranking);
        Ok((stored?, ranking))
    }

    /// Stores the visitor's message in their conversation (a new one when needed); nothing
    /// retrieved yet.
    async fn store_question(
        &self,
        tx: &Transaction<'_>,
        question: &Question,
        message: &str,
        agent: AgentSettings,
    ) -> ApiResult<Prepared> {
        let existing = match question.conversation_id {
            None => None,
            Some(id) => {
                let statement = tx
                    .prepare_cached(
                        "SELECT status, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id)
                         FROM conversations c WHERE id = $1",
                    )
                    .await?;
                let row =
                    tx.query_opt(&statement, &[&id])
                        .await?
                        .ok_or_else(|| ApiError::NotFound {
                            code: "conversation_not_found",
                            message: "no such conversation for this visitor and agent".into(),
                        })?;
                let status: String = row.get(0);
                let count: i64 = row.get(1);
                if status != "closed" && count >= self.limits.max_conversation_messages {
                    return Err(ApiError::Conflict {
                        code: "conversation_too_long",
                        message: format!(
                            "this conversation has reached {} messages; start a new one",
                            self.limits.max_conversation_messages
                        ),
                    });
                }
                // A closed conversation is not reopened: the visitor's next message starts a
                // new one.
                (status != "closed").then_some((id, status == "human_takeover"))
            }
        };
        let (conversation_id, takeover, created) = match existing {
            Some((id, takeover)) => (id, takeover, false),
            None => {
                let statement = tx
                    .prepare_cached(
                        "INSERT INTO conversations (agent_id, visitor_id) VALUES ($1, $2) RETURNING id",
                    )
                    .await?;
                let inserted = tx
                    .query_one(&statement, &[&agent.id, &question.visitor_id])
                    .await;
                match inserted {
                    Ok(row) => (row.get(0), false, true),
                    Err(err) => match ApiError::from(err) {
                        ApiError::PlanLimit { details, .. } => {
                            return Ok(Prepared::OverPlanLimit {
                                agent: Box::new(agent),
                                details,
                            });
                        }
                        other => return Err(other),
                    },
                }
            }
        };

        let statement = tx
            .prepare_cached(
                "INSERT INTO messages (conversation_id, role, content, attachments)
                 VALUES ($1, 'user', $2, $3) RETURNING id",
            )
            .await?;
        let user_message_id: Uuid = tx
            .query_one(
                &statement,
                &[
                    &conversation_id,
                    &message,
                    &serde_json::to_value(&question.attachments)
                        .map_err(|err| ApiError::Internal(err.into()))?,
                ],
            )
            .await?
            .get(0);
        let history = if created {
            Vec::new()
        } else {
            recent_history(tx, conversation_id, user_message_id).await?
        };
        billing::record_usage(
            tx,
            agent.owner,
            Usage {
                conversations: i32::from(created),
                messages: 1,
                ..Usage::default()
            },
        )
        .await?;
        let events = realtime::events::written_in(tx).await?;
        Ok(Prepared::Stored {
            agent: Box::new(agent),
            stored: StoredQuestion {
                conversation_id,
                created,
                takeover,
                user_message_id,
                history,
                events,
            },
            retrieved: None,
        })
    }

    /// Tells the owner a visitor was turned away by the plan's conversation limit.
    async fn log_plan_limit(
        &self,
        caller: &Caller,
        agent: &AgentSettings,
        details: serde_json::Value,
    ) -> ApiResult<()> {
        let mut client = self.db.client().await?;
        let tx = db::begin_as(&mut client, caller).await?;
        let mut event = SecurityEvent::new(Some(agent.owner), "plan.limit_reached");
        event.resource_type = Some("agent");
        event.resource_id = Some(agent.id.to_string());
        event.details = details;
        security_log::record(&tx, &event).await?;
        tx.commit().await?;
        Ok(())
    }
}

impl Pending {
    /// Produces the reply, handing its text to `on_delta` as it comes, and stores it.
    pub async fn answer(
        self,
        chat: &Chat,
        on_delta: &mut (dyn FnMut(&str) + Send),
    ) -> ApiResult<Reply> {
        let fallback = |on_delta: &mut (dyn FnMut(&str) + Send)| {
            on_delta(&self.agent.fallback_message);
            (
                self.agent.fallback_message.clone(),
                Vec::new(),
                AnsweredBy::Fallback,
                TokenUsage::default(),
            )
        };
        let (text, citations, answered_by, usage) = if self.hits.is_empty() {
            fallback(on_delta)
        } else {
            match chat.providers.route(&self.agent.model) {
                None => {
                    let (text, citations) = extractive::answer(&self.question, &self.hits);
                    on_delta(&text);
                    (
                        text,
                        citations,
                        AnsweredBy::Extractive,
                        TokenUsage::default(),
                    )
                }
                Some(route) => {
                    let persona = Persona {
                        name: &self.agent.name,
                        system_prompt: &self.agent.system_prompt,
                        fallback_message: &self.agent.fallback_message,
                        temperature: self.agent.temperature,
                    };
                    let (prompt, citations) = prompt::build(
                        &persona,
                        &self.history,
                        &self.hits,
                        &self.question,
                        chat.limits.budgets,
                    );
                    let completion = route.stream(&prompt, on_delta).await.map_err(|err| {
                        tracing::error!(model = %route.describe(), error = %err, "the model call failed");
                        ApiError::Upstream {
                            code: "model_unavailable",
                            message: MODEL_UNAVAILABLE.into(),
                        }
                    })?;
                    if completion.text.trim() == self.agent.fallback_message.trim() {
                        // The model found the excerpts beside the point: a gap all the same.
                        (
                            completion.text,
                            Vec::new(),
                            AnsweredBy::Fallback,
                            completion.usage,
                        )
                    } else {
                        let cited = cited_only(citations, &completion.text);
                        (completion.text, cited, AnsweredBy::Model, completion.usage)
                    }
                }
            }
        };

        let latency_ms = self.started.elapsed().as_millis() as u64;
        let chunk_ids: Vec<Uuid> = citations.iter().map(|c| c.chunk_id).collect();
        let mut client = chat.db.client().await?;
        let tx = db::begin_as(&mut client, &self.caller).await?;
        if answered_by == AnsweredBy::Fallback && !self.hits.is_empty() {
            gaps::record(
                &tx,
                self.agent.id,
                self.conversation_id,
                &self.question,
                None,
            )
            .await?;
        }
        let statement = tx
            .prepare_cached(
                "INSERT INTO messages (conversation_id, role, content, prompt_tokens,
                                       completion_tokens, latency_ms, chunk_ids)
                 VALUES ($1, 'assistant', $2, $3, $4, $5, $6) RETURNING id",
            )
            .await?;
        let message_id: Uuid = tx
            .query_one(
                &statement,
                &[
                    &self.conversation_id,
                    &text,
                    &(usage.prompt_tokens as i32),
                    &(usage.completion_tokens as i32),
                    &(latency_ms.min(i32::MAX as u64) as i32),
                    &chunk_ids,
                ],
            )
            .await?
            .get(0);
        billing::record_usage(
            &tx,
            self.agent.owner,
            Usage {
                messages: 1,
                tokens: i64::from(usage.prompt_tokens) + i64::from(usage.completion_tokens),
                ..Usage::default()
            },
        )
        .await?;
        let events = realtime::events::written_in(&tx).await?;
        tx.commit().await?;

        Ok(Reply {
            message_id,
            text,
            citations,
            offer_human: answered_by == AnsweredBy::Fallback,
            answered_by,
            prompt_tokens: usage.prompt_tokens,
            completion_tokens: usage.completion_tokens,
            latency_ms,
            events,
        })
    }
}

/// The citations whose `[n]` the answer mentions; all of them when it mentions none (the
/// model used the excerpts without numbering them).
fn cited_only(citations: Vec<Citation>, text: &str) -> Vec<Citation> {
    let mentioned: Vec<Citation> = citations
        .iter()
        .filter(|c| text.contains(&format!("[{}]", c.index)))
        .cloned()
        .collect();
    if mentioned.is_empty() {
        citations
    } else {
        mentioned
    }
}

/// Checks a question before anything is stored.
fn validate(question: &Question, message: &str, limits: &ChatLimits) -> ApiResult<()> {
    let visitor = &question.visitor_id;
    if visitor.is_empty()
        || visitor.len() > 128
        || !visitor
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
    {
        return Err(ApiError::invalid_field(
            "visitorId",
            "must be 1-128 characters of letters, digits, '-', '_', '.' or ':'",
        ));
    }
    if message.is_empty() {
        return Err(ApiError::invalid_field("message", "must not be empty"));
    }
    let chars = message.chars().count();
    if chars > limits.max_message_chars {
        return Err(ApiError::Validation {
            message: format!(
                "message: {chars} characters; at most {} are accepted",
                limits.max_message_chars
            ),
            details: serde_json::json!({
                "fields": { "message": "too long" },
                "limit": limits.max_message_chars,
            }),
        });
    }
    Ok(())
}

/// A word ranking under way on its own task; dropping the handle stops it.
type WordsUnderway = RemoteHandle<ApiResult<search::WordRanking>>;

/// Starts the first half of a hybrid search on its own connection, in a transaction as the
/// visitor. A task of its own, so it goes on while the question's transaction waits for the
/// embedding and then ranks by meaning.
fn start_ranking_words(
    mut client: db::Client,
    caller: Caller,
    agent_id: Uuid,
    message: String,
    count: u32,
) -> WordsUnderway {
    let (ranking, handle) = async move {
        let tx = db::begin_as(&mut client, &caller).await?;
        let ranking = search::rank_by_words(&tx, agent_id, &message, count).await?;
        tx.commit().await?;
        Ok(ranking)
    }
    .in_current_span()
    .remote_handle();
    tokio::spawn(ranking);
    handle
}

async fn agent_settings(tx: &impl GenericClient, agent: Uuid) -> ApiResult<AgentSettings> {
    let statement = tx
        .prepare_cached(
            "SELECT id, user_id, name, model, system_prompt, temperature, fallback_message,
                    retrieval_mode, match_threshold, match_count, embedding_model, allowed_domains
             FROM agents WHERE id = $1",
        )
        .await?;
    let row = tx
        .query_opt(&statement, &[&agent])
        .await?
        .ok_or_else(agent_not_found)?;
    let mode: String = row.get("retrieval_mode");
    let threshold: f32 = row.get("match_threshold");
    let count: i32 = row.get("match_count");
    Ok(AgentSettings {
        id: row.get("id"),
        owner: row.get("user_id"),
        name: row.get("name"),
        model: row.get("model"),
        system_prompt: row.get("system_prompt"),
        temperature: row.get("temperature"),
        fallback_message: row.get("fallback_message"),
        retrieval_mode: if mode == "vector" {
            RetrievalMode::Vector
        } else {
            RetrievalMode::Hybrid
        },
        match_threshold: f64::from(threshold),
        match_count: u32::try_from(count).unwrap_or(5),
        embedding_model: row.get("embedding_model"),
        allowed_domains: row.get("allowed_domains"),
    })
}

/// The conversation's earlier turns, oldest first. A team member's `human` messages count
/// as the business's side, so the bot picks up after a takeover without repeating them.
async fn recent_history(
    tx: &impl GenericClient,
    conversation: Uuid,
    except: Uuid,
) -> ApiResult<Vec<Turn>> {
    let statement = tx
        .prepare_cached(
            "SELECT role, content FROM messages
             WHERE conversation_id = $1 AND id <> $2 AND role IN ('user', 'assistant', 'human')
             ORDER BY created_at DESC LIMIT $3",
        )
        .await?;
    let rows = tx
        .query(&statement, &[&conversation, &except, &HISTORY_MESSAGES])
        .await?;
    Ok(rows
        .iter()
        .rev()
        .map(|row| Turn {
            role: if row.get::<_, &str>(0) == "user" {
                Role::User
            } else {
                Role::Assistant
            },
            content: row.get(1),
        })
        .collect())
}
