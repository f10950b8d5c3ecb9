//! The databases the service's tests run on: a fresh SQLite file each time, and a fresh
//! PostgreSQL database when a server is configured.

/// A fresh SQLite file's URL.
pub fn temp_db() -> String {
    let path = std::env::temp_dir().join(format!(
        "crossfire-test-{}-{}.db",
        std::process::id(),
        crossfire_engine::transcript::new_id()
    ));
    format!("sqlite://{}", path.display())
}

/// The PostgreSQL server tests may use (`CROSSFIRE_TEST_DATABASE_URL`). Under CI (`CI` set)
/// a missing URL fails the test instead of skipping PostgreSQL silently.
pub fn postgres_admin_url() -> Option<String> {
    let url = std::env::var("CROSSFIRE_TEST_DATABASE_URL")
        .ok()
        .filter(|u| !u.is_empty());
    if url.is_none() && std::env::var_os("CI").is_some() {
        panic!(
            "CI is set but CROSSFIRE_TEST_DATABASE_URL is not: start one with scripts/start-postgres"
        );
    }
    url
}

/// A new, empty PostgreSQL database on the server at `admin`; its URL.
pub async fn fresh_postgres_database(admin: &str) -> String {
    let name = format!(
        "crossfire_test_{}",
        &crossfire_engine::transcript::new_id()[..16]
    );
    let pool = sqlx::PgPool::connect(admin)
        .await
        .expect("the test PostgreSQL server answers");
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let (server, _) = admin.rsplit_once('/').expect("a database URL");
    format!("{server}/{name}")
}

/// Every database a storage case runs on: a SQLite file, and a fresh PostgreSQL database
/// when a server is configured.
pub async fn databases() -> Vec<String> {
    let mut databases = vec![temp_db()];
    if let Some(admin) = postgres_admin_url() {
        databases.push(fresh_postgres_database(&admin).await);
    }
    databases
}
