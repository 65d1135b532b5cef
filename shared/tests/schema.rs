//! The schema itself: migrations apply from empty and are a no-op the second time, every table
//! is under forced row-level security, and the application role cannot get around it.

use chatpad::testing::{TestDb, env_var, with_database};
use tokio_postgres::NoTls;

#[tokio::test]
async fn migrations_apply_from_empty_and_rerun_as_a_no_op() {
    let test = TestDb::new().await;
    let su = test.superuser().await;
    let name = format!("empty_{}", uuid::Uuid::new_v4().simple());
    su.batch_execute(&format!("CREATE DATABASE {name} OWNER chatpad_owner"))
        .await
        .unwrap();
    let url = with_database(&env_var("MIGRATION_DATABASE_URL").unwrap(), &name);
    let (mut owner, conn) = tokio_postgres::connect(&url, NoTls).await.unwrap();
    tokio::spawn(conn);

    let first = chatpad::db::migrate(&mut owner).await.unwrap();
    assert_eq!(first.len(), chatpad::db::embedded_migration_count());
    assert!(
        first.windows(2).all(|w| w[0] < w[1]),
        "applied in order: {first:?}"
    );
    let second = chatpad::db::migrate(&mut owner).await.unwrap();
    assert!(second.is_empty(), "second run applied {second:?}");
    let plans: i64 = owner
        .query_one("SELECT count(*) FROM plans", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(plans, 3);
    drop(owner);
    su.batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .unwrap();
}

#[tokio::test]
async fn every_public_table_has_row_level_security_enabled_and_forced() {
    let test = TestDb::new().await;
    let su = test.superuser().await;
    let rows = su
        .query(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p')",
            &[],
        )
        .await
        .unwrap();
    assert!(
        rows.len() >= 20,
        "expected the whole schema, found {} tables",
        rows.len()
    );
    let unprotected: Vec<String> = rows
        .iter()
        .filter(|r| !(r.get::<_, bool>(1) && r.get::<_, bool>(2)))
        .map(|r| r.get(0))
        .collect();
    assert!(
        unprotected.is_empty(),
        "tables without forced RLS: {unprotected:?}"
    );
}

#[tokio::test]
async fn the_migration_history_is_not_readable_by_the_app_role() {
    let test = TestDb::new().await;
    let client = test.db.client().await.unwrap();
    let err = client
        .query("SELECT * FROM refinery_schema_history", &[])
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
}

#[tokio::test]
async fn the_app_role_owns_nothing_and_cannot_bypass_rls() {
    let test = TestDb::new().await;
    let client = test.db.client().await.unwrap();
    let row = client
        .query_one("SELECT rolsuper, rolbypassrls, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = current_user", &[])
        .await
        .unwrap();
    for i in 0..4 {
        assert!(!row.get::<_, bool>(i), "app role has privilege #{i}");
    }
    let owned: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relowner = (SELECT oid FROM pg_roles WHERE rolname = current_user) AND n.nspname IN ('public', 'auth')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(owned, 0);
}

#[tokio::test]
async fn claims_set_in_a_transaction_do_not_outlive_it_on_a_pooled_connection() {
    use chatpad::auth::Caller;
    let test = TestDb::new().await;
    let su = test.superuser().await;
    let user: uuid::Uuid = su
        .query_one(
            "INSERT INTO users (auth_subject) VALUES ('s') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    let mut client = test.db.client().await.unwrap();
    {
        let tx = chatpad::db::begin_as(&mut client, &Caller::User { user_id: user })
            .await
            .unwrap();
        let uid: Option<uuid::Uuid> = tx.query_one("SELECT auth.uid()", &[]).await.unwrap().get(0);
        assert_eq!(uid, Some(user));
        tx.commit().await.unwrap();
    }
    let uid: Option<uuid::Uuid> = client
        .query_one("SELECT auth.uid()", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(uid, None, "claims leaked past commit");
}
