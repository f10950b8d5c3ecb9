//! The service's settings, as the composition root hands them over (docs/configuration.md).

/// Where the service listens and stores, and what a reader may do in a day.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub addr: String,
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// Debates a user may start per UTC day.
    pub debates_per_day: u32,
    /// Sign-ups per client address and hour; 0: no limit.
    pub signups_per_hour: u32,
    /// The header a trusted reverse proxy puts the client's address in (`x-forwarded-for`,
    /// its first address): only then is any header believed, else the peer address counts.
    pub client_ip_header: Option<String>,
    /// Perspectives a user may start per UTC day.
    pub perspectives_per_day: u32,
    /// Model tokens the whole deployment may spend per UTC day; 0: no limit.
    pub daily_token_budget: u64,
    /// Origins allowed to call the API from a browser (CORS); none by default.
    pub cors_origins: Vec<String>,
    /// Reload the editors' files when they change (on by default).
    pub watch_files: bool,
    /// This instance's name in the runs it claims; by default the host's name and the port
    /// it listens on, so that an instance restarted in its place knows its runs at once.
    pub instance: Option<String>,
    /// How long an instance's claim on the runs it executes holds without renewal: after a
    /// crash, another instance takes the runs over once it lapses.
    pub run_lease: std::time::Duration,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            addr: "127.0.0.1:8080".to_string(),
            database_url: "sqlite://crossfire.db".to_string(),
            debates_per_day: 20,
            signups_per_hour: 20,
            client_ip_header: None,
            perspectives_per_day: 50,
            daily_token_budget: 0,
            cors_origins: Vec::new(),
            watch_files: true,
            instance: None,
            run_lease: std::time::Duration::from_secs(15),
        }
    }
}
