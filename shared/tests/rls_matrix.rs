//! The access matrix: for every tenant table, each kind of caller (the owner, every team role,
//! an unrelated user, an anonymous caller, a widget visitor) tries to select, insert, update and
//! delete one account's rows, through the application role and real row-level security.
//! Denied updates and deletes must touch 0 rows; denied inserts must fail.

use chatpad::auth::Caller;
use chatpad::db::{self, Transaction};
use chatpad::testing::TestDb;
use uuid::Uuid;

/// Minimum rank per command: client 1, member 2, manager 3, admin 4, super_admin 5, owner 6.
/// `NONE` means no caller may do it directly. This restates the policy table of the
/// architecture document independently of the migration that implements it.
const NONE: u8 = 99;
struct Spec {
    table: &'static str,
    read: u8,
    insert: u8,
    update: u8,
    delete: u8,
}
const SPECS: &[Spec] = &[
    Spec {
        table: "agents",
        read: 1,
        insert: 3,
        update: 3,
        delete: 3,
    },
    Spec {
        table: "conversations",
        read: 1,
        insert: 2,
        update: 2,
        delete: 3,
    },
    Spec {
        table: "messages",
        read: 1,
        insert: 2,
        update: NONE,
        delete: 3,
    },
    Spec {
        table: "takeovers",
        read: 1,
        insert: 2,
        update: 2,
        delete: 3,
    },
    Spec {
        table: "leads",
        read: 2,
        insert: 3,
        update: 3,
        delete: 3,
    },
    Spec {
        table: "help_articles",
        read: 1,
        insert: 3,
        update: 3,
        delete: 3,
    },
    Spec {
        table: "knowledge_sources",
        read: 1,
        insert: 3,
        update: 3,
        delete: 3,
    },
    Spec {
        table: "knowledge_chunks",
        read: 1,
        insert: 3,
        update: 3,
        delete: 3,
    },
    Spec {
        table: "api_keys",
        read: 4,
        insert: 4,
        update: 4,
        delete: 4,
    },
    Spec {
        table: "webhooks",
        read: 4,
        insert: 4,
        update: 4,
        delete: 4,
    },
    Spec {
        table: "webhook_deliveries",
        read: 4,
        insert: 4,
        update: 4,
        delete: NONE,
    },
    Spec {
        table: "locations",
        read: 1,
        insert: 3,
        update: 3,
        delete: 3,
    },
    Spec {
        table: "connected_accounts",
        read: 4,
        insert: 4,
        update: 4,
        delete: 4,
    },
    Spec {
        table: "scheduled_reports",
        read: 2,
        insert: 3,
        update: 3,
        delete: 3,
    },
    Spec {
        table: "usage_metrics",
        read: 1,
        insert: NONE,
        update: NONE,
        delete: NONE,
    },
    Spec {
        table: "security_logs",
        read: 4,
        insert: NONE,
        update: NONE,
        delete: NONE,
    },
    Spec {
        table: "subscriptions",
        read: 1,
        insert: NONE,
        update: NONE,
        delete: NONE,
    },
    Spec {
        table: "team_members",
        read: 1,
        insert: 4,
        update: 4,
        delete: 4,
    },
];

/// One account's rows, created as the superuser.
struct Account {
    owner: Uuid,
    agent: Uuid,
    conversation: Uuid,
    source: Uuid,
    webhook: Uuid,
    location: Uuid,
    /// The id of this account's fixture row in each table.
    rows: Vec<(&'static str, String)>,
}

async fn user(su: &tokio_postgres::Client, name: &str) -> Uuid {
    su.query_one(
        "INSERT INTO users (auth_subject, email) VALUES ($1, $1 || '@example.com') RETURNING id",
        &[&name],
    )
    .await
    .unwrap()
    .get(0)
}

async fn id(su: &tokio_postgres::Client, sql: &str) -> Uuid {
    su.query_one(sql, &[])
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .get(0)
}

async fn seed_account(su: &tokio_postgres::Client, name: &str) -> Account {
    let owner = user(su, name).await;
    // Pro: no count limits and every feature, so plan limits do not mask access rules.
    let subscription = id(
        su,
        &format!(
            "INSERT INTO subscriptions (user_id, plan_id) VALUES ('{owner}', 'pro') RETURNING id"
        ),
    )
    .await;
    let agent = id(
        su,
        &format!("INSERT INTO agents (user_id, name) VALUES ('{owner}', 'Agent') RETURNING id"),
    )
    .await;
    let conversation = id(
        su,
        &format!(
            "INSERT INTO conversations (agent_id, visitor_id) VALUES ('{agent}', 'v1') RETURNING id"
        ),
    )
    .await;
    let message = id(
        su,
        &format!("INSERT INTO messages (conversation_id, role, content) VALUES ('{conversation}', 'user', 'hi') RETURNING id"),
    )
    .await;
    let takeover = id(su, &format!("INSERT INTO takeovers (conversation_id, taken_by) VALUES ('{conversation}', '{owner}') RETURNING id")).await;
    let lead = id(
        su,
        &format!("INSERT INTO leads (agent_id, conversation_id, visitor_id, email) VALUES ('{agent}', '{conversation}', 'v1', 'a@b.c') RETURNING id"),
    )
    .await;
    let article =
        id(su, &format!("INSERT INTO help_articles (agent_id, title, published) VALUES ('{agent}', 'How to', true) RETURNING id")).await;
    let source = id(
        su,
        &format!("INSERT INTO knowledge_sources (agent_id, type, title, status) VALUES ('{agent}', 'text', 'Doc', 'ready') RETURNING id"),
    )
    .await;
    let chunk = id(
        su,
        &format!(
            "INSERT INTO knowledge_chunks (source_id, position, content, embedding_model, embedding)
             VALUES ('{source}', 0, 'text', 'local/all-MiniLM-L6-v2', array_fill(0.1, ARRAY[384])::real[]::vector) RETURNING id"
        ),
    )
    .await;
    let api_key = id(
        su,
        &format!(
            "INSERT INTO api_keys (user_id, name, prefix, key_hash)
             VALUES ('{owner}', 'k', 'cpk_live_' || substr(md5(random()::text), 1, 8), sha256('x'::bytea)) RETURNING id"
        ),
    )
    .await;
    let webhook = id(
        su,
        &format!("INSERT INTO webhooks (user_id, url, events, secret_ciphertext) VALUES ('{owner}', 'https://example.com/h', '{{lead.created}}', '\\x00') RETURNING id"),
    )
    .await;
    let delivery = id(
        su,
        &format!("INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, payload) VALUES ('{webhook}', gen_random_uuid(), 'lead.created', '{{}}') RETURNING id"),
    )
    .await;
    let location = id(
        su,
        &format!("INSERT INTO locations (user_id, name) VALUES ('{owner}', 'HQ') RETURNING id"),
    )
    .await;
    let connected = id(
        su,
        &format!("INSERT INTO connected_accounts (user_id, integration_type, account_identifier) VALUES ('{owner}', 'gmail', '{name}@gmail.com') RETURNING id"),
    )
    .await;
    let report = id(
        su,
        &format!("INSERT INTO scheduled_reports (user_id, name, frequency, recipients) VALUES ('{owner}', 'Weekly', 'weekly', '{{a@b.c}}') RETURNING id"),
    )
    .await;
    su.execute(
        "INSERT INTO usage_metrics (user_id, messages) VALUES ($1, 3)",
        &[&owner],
    )
    .await
    .unwrap();
    su.execute(
        "INSERT INTO security_logs (user_id, event_type) VALUES ($1, 'test.seeded')",
        &[&owner],
    )
    .await
    .unwrap();
    let rows = vec![
        ("agents", agent.to_string()),
        ("conversations", conversation.to_string()),
        ("messages", message.to_string()),
        ("takeovers", takeover.to_string()),
        ("leads", lead.to_string()),
        ("help_articles", article.to_string()),
        ("knowledge_sources", source.to_string()),
        ("knowledge_chunks", chunk.to_string()),
        ("api_keys", api_key.to_string()),
        ("webhooks", webhook.to_string()),
        ("webhook_deliveries", delivery.to_string()),
        ("locations", location.to_string()),
        ("connected_accounts", connected.to_string()),
        ("scheduled_reports", report.to_string()),
        ("subscriptions", subscription.to_string()),
    ];
    Account {
        owner,
        agent,
        conversation,
        source,
        webhook,
        location,
        rows,
    }
}

impl Account {
    /// SQL inserting one new row of `table` into this account.
    fn insert_sql(&self, table: &str) -> String {
        let (o, a, c, s, w, l) = (
            self.owner,
            self.agent,
            self.conversation,
            self.source,
            self.webhook,
            self.location,
        );
        match table {
            "agents" => format!("INSERT INTO agents (user_id, name) VALUES ('{o}', 'New')"),
            "conversations" => format!("INSERT INTO conversations (agent_id, visitor_id) VALUES ('{a}', 'v2')"),
            "messages" => format!("INSERT INTO messages (conversation_id, role, content) VALUES ('{c}', 'human', 'hello')"),
            "takeovers" => format!(
                "INSERT INTO takeovers (conversation_id, started_at, ended_at, end_action) VALUES ('{c}', now(), now(), 'closed')"
            ),
            "leads" => format!("INSERT INTO leads (agent_id, email) VALUES ('{a}', 'n@e.w')"),
            "help_articles" => format!("INSERT INTO help_articles (agent_id, title) VALUES ('{a}', 'New')"),
            "knowledge_sources" => format!("INSERT INTO knowledge_sources (agent_id, type, title) VALUES ('{a}', 'text', 'New')"),
            "knowledge_chunks" => format!(
                "INSERT INTO knowledge_chunks (source_id, position, content, embedding_model, embedding)
                 VALUES ('{s}', 1, 'new', 'local/all-MiniLM-L6-v2', array_fill(0.2, ARRAY[384])::real[]::vector)"
            ),
            "api_keys" => format!(
                "INSERT INTO api_keys (user_id, name, prefix, key_hash) VALUES ('{o}', 'n', 'cpk_live_newkey01', sha256('y'::bytea))"
            ),
            "webhooks" => format!(
                "INSERT INTO webhooks (user_id, url, events, secret_ciphertext) VALUES ('{o}', 'https://e.com', '{{lead.created}}', '\\x01')"
            ),
            "webhook_deliveries" => format!(
                "INSERT INTO webhook_deliveries (webhook_id, event_id, event_type, payload) VALUES ('{w}', gen_random_uuid(), 'lead.created', '{{}}')"
            ),
            "locations" => format!("INSERT INTO locations (user_id, name) VALUES ('{o}', 'Branch')"),
            "connected_accounts" => format!(
                "INSERT INTO connected_accounts (user_id, location_id, integration_type, account_identifier) VALUES ('{o}', '{l}', 'outlook', 'x@y.z')"
            ),
            "scheduled_reports" => format!(
                "INSERT INTO scheduled_reports (user_id, name, frequency, recipients) VALUES ('{o}', 'Daily', 'daily', '{{a@b.c}}')"
            ),
            "usage_metrics" => format!("INSERT INTO usage_metrics (user_id, day, messages) VALUES ('{o}', '2020-01-01', 1)"),
            "security_logs" => format!("INSERT INTO security_logs (user_id, event_type) VALUES ('{o}', 'forged.event')"),
            "subscriptions" => format!("INSERT INTO subscriptions (user_id, plan_id) VALUES ('{o}', 'pro')"),
            "team_members" => format!("INSERT INTO team_members (owner_id, invited_email, role) VALUES ('{o}', 'new@x.y', 'member')"),
            other => panic!("no insert for {other}"),
        }
    }

    /// `WHERE` clause selecting this account's fixture rows of `table`.
    fn rows_of(&self, table: &str) -> String {
        match table {
            "team_members" => format!("owner_id = '{}' AND role = 'member'", self.owner),
            "usage_metrics" | "security_logs" => format!("user_id = '{}'", self.owner),
            _ => {
                let id = &self.rows.iter().find(|(t, _)| *t == table).unwrap().1;
                format!("id = '{id}'")
            }
        }
    }

    /// A harmless assignment for an UPDATE of `table`.
    fn touch(table: &str) -> &'static str {
        match table {
            "usage_metrics" => "messages = messages",
            "team_members" => "role = role",
            "subscriptions" => "status = status",
            "security_logs" => "details = details",
            "messages" => "content = content",
            _ => "created_at = created_at",
        }
    }
}

enum Try {
    Allowed,
    Denied,
}

async fn in_tx<F>(test: &TestDb, caller: &Caller, f: F) -> Result<u64, tokio_postgres::Error>
where
    F: for<'a> AsyncFnOnce(&'a Transaction<'a>) -> Result<u64, tokio_postgres::Error>,
{
    let mut client = test.db.client().await.unwrap();
    let tx = db::begin_as(&mut client, caller).await.unwrap();
    let result = f(&tx).await;
    tx.rollback().await.ok();
    result
}

fn expect(rank: u8, needed: u8) -> Try {
    if rank >= needed {
        Try::Allowed
    } else {
        Try::Denied
    }
}

#[tokio::test]
async fn every_tenant_table_allows_exactly_the_roles_the_policy_table_names() {
    let test = TestDb::new().await;
    let su = test.superuser().await;
    let account = seed_account(&su, "owner").await;
    let other = seed_account(&su, "stranger").await;

    let mut callers: Vec<(String, u8, Caller)> = vec![(
        "owner".into(),
        6,
        Caller::User {
            user_id: account.owner,
        },
    )];
    for (role, rank) in [
        ("super_admin", 5),
        ("admin", 4),
        ("manager", 3),
        ("member", 2),
        ("client", 1),
    ] {
        let member = user(&su, role).await;
        su.execute(
            "INSERT INTO team_members (owner_id, member_id, role, status) VALUES ($1, $2, $3, 'active')",
            &[&account.owner, &member, &role],
        )
        .await
        .unwrap();
        callers.push((role.into(), rank, Caller::User { user_id: member }));
    }
    // A pending invitation grants nothing.
    let invited = user(&su, "invited").await;
    su.execute(
        "INSERT INTO team_members (owner_id, member_id, role, status) VALUES ($1, $2, 'admin', 'pending')",
        &[&account.owner, &invited],
    )
    .await
    .unwrap();
    callers.push(("pending admin".into(), 0, Caller::User { user_id: invited }));
    callers.push((
        "unrelated user".into(),
        0,
        Caller::User {
            user_id: other.owner,
        },
    ));
    callers.push(("anonymous".into(), 0, Caller::Anonymous));

    let mut failures = Vec::new();
    for spec in SPECS {
        for (who, rank, caller) in &callers {
            let table = spec.table;
            let filter = account.rows_of(table);

            let visible = in_tx(&test, caller, async |tx| {
                Ok(tx
                    .query_one(&format!("SELECT count(*) FROM {table} WHERE {filter}"), &[])
                    .await?
                    .get::<_, i64>(0) as u64)
            })
            .await
            .unwrap();
            match (expect(*rank, spec.read), visible) {
                (Try::Allowed, 0) => failures.push(format!("{who} cannot select {table}")),
                (Try::Denied, n) if n > 0 => failures.push(format!("{who} can select {table}")),
                _ => {}
            }

            let inserted = in_tx(&test, caller, async |tx| {
                tx.execute(&account.insert_sql(table), &[]).await
            })
            .await;
            match (expect(*rank, spec.insert), &inserted) {
                (Try::Allowed, Err(e)) => {
                    failures.push(format!("{who} cannot insert into {table}: {e:?}"))
                }
                (Try::Denied, Ok(_)) => failures.push(format!("{who} can insert into {table}")),
                _ => {}
            }

            let updated = in_tx(&test, caller, async |tx| {
                tx.execute(
                    &format!(
                        "UPDATE {table} SET {} WHERE {filter}",
                        Account::touch(table)
                    ),
                    &[],
                )
                .await
            })
            .await;
            match (expect(*rank, spec.update), &updated) {
                (Try::Allowed, Ok(0)) | (Try::Allowed, Err(_)) => {
                    failures.push(format!("{who} cannot update {table}: {updated:?}"))
                }
                (Try::Denied, Ok(n)) if *n > 0 => {
                    failures.push(format!("{who} can update {table}"))
                }
                _ => {}
            }

            let deleted = in_tx(&test, caller, async |tx| {
                tx.execute(&format!("DELETE FROM {table} WHERE {filter}"), &[])
                    .await
            })
            .await;
            match (expect(*rank, spec.delete), &deleted) {
                (Try::Allowed, Ok(0)) | (Try::Allowed, Err(_)) => {
                    failures.push(format!("{who} cannot delete from {table}: {deleted:?}"))
                }
                (Try::Denied, Ok(n)) if *n > 0 => {
                    failures.push(format!("{who} can delete from {table}"))
                }
                _ => {}
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} access-matrix violations:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn denied_updates_and_deletes_touch_zero_rows_silently() {
    let test = TestDb::new().await;
    let su = test.superuser().await;
    let account = seed_account(&su, "owner").await;
    let other = seed_account(&su, "stranger").await;
    let stranger = Caller::User {
        user_id: other.owner,
    };
    let agent = account.agent;
    let updated = in_tx(&test, &stranger, async |tx| {
        tx.execute("UPDATE agents SET name = 'pwned' WHERE id = $1", &[&agent])
            .await
    })
    .await;
    assert_eq!(updated.unwrap(), 0);
    let deleted = in_tx(&test, &stranger, async |tx| {
        tx.execute("DELETE FROM agents WHERE id = $1", &[&agent])
            .await
    })
    .await;
    assert_eq!(deleted.unwrap(), 0);
    let name: String = su
        .query_one("SELECT name FROM agents WHERE id = $1", &[&agent])
        .await
        .unwrap()
        .get(0);
    assert_eq!(name, "Agent");
}

#[tokio::test]
async fn an_update_cannot_move_a_row_into_another_tenant() {
    let test = TestDb::new().await;
    let su = test.superuser().await;
    let account = seed_account(&su, "owner").await;
    let other = seed_account(&su, "stranger").await;
    let owner = Caller::User {
        user_id: account.owner,
    };
    let (agent, conversation, other_owner, other_agent) = (
        account.agent,
        account.conversation,
        other.owner,
        other.agent,
    );

    let moved = in_tx(&test, &owner, async |tx| {
        tx.execute(
            "UPDATE agents SET user_id = $1 WHERE id = $2",
            &[&other_owner, &agent],
        )
        .await
    })
    .await;
    assert_eq!(
        moved.unwrap_err().code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );

    // Pointing a conversation at another tenant's agent relabels its owner, which WITH CHECK refuses.
    let moved = in_tx(&test, &owner, async |tx| {
        tx.execute(
            "UPDATE conversations SET agent_id = $1 WHERE id = $2",
            &[&other_agent, &conversation],
        )
        .await
    })
    .await;
    assert_eq!(
        moved.unwrap_err().code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );

    // Inserting a child row under another tenant's parent is refused the same way.
    let planted = in_tx(&test, &owner, async |tx| {
        tx.execute(
            "INSERT INTO conversations (agent_id, visitor_id) VALUES ($1, 'x')",
            &[&other_agent],
        )
        .await
    })
    .await;
    assert_eq!(
        planted.unwrap_err().code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
}

#[tokio::test]
async fn a_widget_visitor_sees_only_its_agent_and_its_own_conversation() {
    let test = TestDb::new().await;
    let su = test.superuser().await;
    let account = seed_account(&su, "owner").await;
    let other = seed_account(&su, "stranger").await;
    let visitor = Caller::Widget {
        agent_id: account.agent,
        visitor_id: "v1".into(),
    };
    let other_visitor = Caller::Widget {
        agent_id: account.agent,
        visitor_id: "v2".into(),
    };
    let (agent, conversation) = (account.agent, account.conversation);

    let count = async |caller: &Caller, sql: &str| -> i64 {
        let sql = sql.to_owned();
        in_tx(&test, caller, async |tx| {
            Ok(tx.query_one(&sql, &[]).await?.get::<_, i64>(0) as u64)
        })
        .await
        .unwrap() as i64
    };
    assert_eq!(count(&visitor, "SELECT count(*) FROM agents").await, 1);
    assert_eq!(
        count(&visitor, "SELECT count(*) FROM conversations").await,
        1
    );
    assert_eq!(count(&visitor, "SELECT count(*) FROM messages").await, 1);
    assert_eq!(
        count(&visitor, "SELECT count(*) FROM knowledge_chunks").await,
        1
    );
    assert_eq!(
        count(&visitor, "SELECT count(*) FROM help_articles").await,
        1
    );
    assert_eq!(
        count(&visitor, "SELECT count(*) FROM subscriptions").await,
        1
    );
    for private in [
        "api_keys",
        "webhooks",
        "webhook_deliveries",
        "security_logs",
        "usage_metrics",
        "team_members",
        "users",
        "locations",
        "connected_accounts",
        "scheduled_reports",
        "takeovers",
    ] {
        assert_eq!(
            count(&visitor, &format!("SELECT count(*) FROM {private}")).await,
            0,
            "{private}"
        );
    }
    // Another visitor of the same agent sees the agent but none of v1's conversation.
    assert_eq!(
        count(&other_visitor, "SELECT count(*) FROM conversations").await,
        0
    );
    assert_eq!(
        count(&other_visitor, "SELECT count(*) FROM messages").await,
        0
    );
    assert_eq!(count(&other_visitor, "SELECT count(*) FROM leads").await, 0);
    // A visitor of the other tenant's agent sees nothing of this one.
    let foreign = Caller::Widget {
        agent_id: other.agent,
        visitor_id: "v1".into(),
    };
    assert_eq!(
        count(
            &foreign,
            &format!("SELECT count(*) FROM agents WHERE id = '{agent}'")
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &foreign,
            &format!("SELECT count(*) FROM conversations WHERE id = '{conversation}'")
        )
        .await,
        0
    );

    // Visitors add their own turns, never a team member's.
    let own = in_tx(&test, &visitor, async |tx| {
        tx.execute(
            "INSERT INTO messages (conversation_id, role, content) VALUES ($1, 'user', 'q')",
            &[&conversation],
        )
        .await
    })
    .await;
    assert_eq!(own.unwrap(), 1);
    let forged = in_tx(&test, &visitor, async |tx| {
        tx.execute("INSERT INTO messages (conversation_id, role, content) VALUES ($1, 'human', 'fake agent')", &[&conversation]).await
    })
    .await;
    assert!(forged.is_err());
    let intrude = in_tx(&test, &other_visitor, async |tx| {
        tx.execute(
            "INSERT INTO messages (conversation_id, role, content) VALUES ($1, 'user', 'x')",
            &[&conversation],
        )
        .await
    })
    .await;
    assert!(intrude.is_err());
}

#[tokio::test]
async fn only_platform_admins_manage_plans_and_grant_super_admin() {
    let test = TestDb::new().await;
    let su = test.superuser().await;
    let account = seed_account(&su, "owner").await;
    let operator = user(&su, "operator").await;
    su.execute(
        "UPDATE users SET is_platform_admin = true WHERE id = $1",
        &[&operator],
    )
    .await
    .unwrap();
    let owner = Caller::User {
        user_id: account.owner,
    };
    let platform = Caller::User { user_id: operator };
    let target = user(&su, "target").await;
    let owner_id = account.owner;

    let raise = async |caller: &Caller| {
        in_tx(&test, caller, async |tx| {
            tx.execute("UPDATE plans SET max_agents = 1000 WHERE id = 'basic'", &[])
                .await
        })
        .await
        .unwrap()
    };
    assert_eq!(raise(&owner).await, 0);
    assert_eq!(raise(&platform).await, 1);

    let grant = async |caller: &Caller| {
        in_tx(&test, caller, async |tx| {
            tx.execute(
                "INSERT INTO team_members (owner_id, member_id, role, status) VALUES ($1, $2, 'super_admin', 'active')",
                &[&owner_id, &target],
            )
            .await
        })
        .await
    };
    assert!(
        grant(&owner).await.is_err(),
        "an account owner minted a super_admin"
    );

    // Users cannot promote themselves to platform admin.
    let promote = in_tx(&test, &owner, async |tx| {
        tx.execute(
            "UPDATE users SET is_platform_admin = true WHERE id = $1",
            &[&owner_id],
        )
        .await
    })
    .await;
    assert!(promote.is_err());
    let visible = in_tx(&test, &Caller::Anonymous, async |tx| {
        Ok(tx
            .query_one("SELECT count(*) FROM plans", &[])
            .await?
            .get::<_, i64>(0) as u64)
    })
    .await
    .unwrap();
    assert_eq!(visible, 3, "plans are a public catalogue");
}
