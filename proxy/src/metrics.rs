//! Prometheus metrics. Labels are route, account, client (LlmClient names,
//! from resources, never from requests), status and outcome names: never
//! keys or prompts.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

/// All metrics of one proxy process.
pub struct Metrics {
    registry: Registry,
    /// Client requests by route, serving account and status.
    pub requests: IntCounterVec,
    /// Upstream attempts by route, account and outcome.
    pub attempts: IntCounterVec,
    /// Gateway-made errors by kind.
    pub errors: IntCounterVec,
    /// Whole upstream exchange, by account.
    pub upstream_seconds: HistogramVec,
    /// Time to first content, by account.
    pub first_byte_seconds: HistogramVec,
    /// Requests in flight per account (this replica).
    pub in_flight: IntGaugeVec,
    /// Seconds left on the account's longest cooldown (0 = none).
    pub cooldown_seconds: GaugeVec,
    /// 1 when the account is blocked account-wide (credentials or quota).
    pub account_blocked: IntGaugeVec,
    /// Configuration reloads by result (applied, rejected).
    pub reloads: IntCounterVec,
    /// Generation of the configuration being served.
    pub config_generation: IntGauge,
    /// 1 while the shared state store is unreachable (local view in use).
    pub state_degraded: IntGauge,
    /// Configured limits per account (`limit`: requests_per_minute,
    /// tokens_per_minute, max_concurrency, daily_tokens).
    pub account_limit: IntGaugeVec,
    /// Unix time the account's longest cooldown ends (0 = none).
    pub cooldown_until: GaugeVec,
    /// Cooldowns started, by account and reason: rate_limited (a 429),
    /// exhausted (a zero remaining budget), blocked (credentials or quota).
    pub cooldowns: IntCounterVec,
    /// Served requests by route and the tier that served them (0 = first).
    pub tier_served: IntCounterVec,
    /// Tokens by route, account and kind (input, output, cached_input).
    pub tokens: IntCounterVec,
    /// Sticky-route requests by route and whether their session's bound
    /// account served them (hit) or not (miss: new or moved).
    pub sessions: IntCounterVec,
    /// Requests of named clients (LlmClients) by client and HTTP status.
    pub client_requests: IntCounterVec,
    /// Tokens of named clients by client and kind (input, output,
    /// cached_input).
    pub client_tokens: IntCounterVec,
    /// Configured limits per client, like `account_limit`.
    pub client_limit: IntGaugeVec,
    /// What each client used across replicas, by client and window
    /// (requests_last_minute, tokens_last_minute, tokens_today, in_flight).
    pub client_usage: IntGaugeVec,
    /// Streams being relayed to clients now.
    pub streams_open: IntGauge,
    /// Client connections open now.
    pub connections_open: IntGauge,
    /// Tasks alive on the runtime (connections, streams, background loops),
    /// read at each scrape: it returns to its baseline once traffic stops.
    pub runtime_tasks: IntGauge,
    /// Client connections refused because the cap was reached.
    pub connections_refused: prometheus::IntCounter,
    /// Time from a request's arrival to its response head, by client API.
    pub request_seconds: HistogramVec,
    /// The gateway's own time per served request: its time in the pipeline
    /// minus the time spent waiting on upstreams.
    pub overhead_seconds: prometheus::Histogram,
}

const LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter =
            |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), labels)?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let histogram = |name: &str, help: &str| -> Result<HistogramVec, prometheus::Error> {
            let h = HistogramVec::new(
                HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()),
                &["account"],
            )?;
            registry.register(Box::new(h.clone()))?;
            Ok(h)
        };
        let requests = counter(
            "llmpool_requests_total",
            "Client requests by route, serving account and HTTP status.",
            &["route", "account", "status"],
        )?;
        let attempts = counter(
            "llmpool_upstream_attempts_total",
            "Upstream attempts by route, account and outcome.",
            &["route", "account", "outcome"],
        )?;
        let errors = counter(
            "llmpool_gateway_errors_total",
            "Errors the gateway answered itself, by kind.",
            &["kind"],
        )?;
        let reloads = counter(
            "llmpool_config_reloads_total",
            "Configuration reloads by result.",
            &["result"],
        )?;
        let upstream_seconds = histogram(
            "llmpool_upstream_duration_seconds",
            "Upstream exchange duration, request to last byte.",
        )?;
        let first_byte_seconds = histogram(
            "llmpool_upstream_first_byte_seconds",
            "Time from sending upstream to its first content.",
        )?;
        let in_flight = IntGaugeVec::new(
            Opts::new(
                "llmpool_account_in_flight",
                "Requests in flight per account on this replica.",
            ),
            &["account"],
        )?;
        registry.register(Box::new(in_flight.clone()))?;
        let cooldown_seconds = GaugeVec::new(
            Opts::new(
                "llmpool_account_cooldown_seconds",
                "Seconds left on the account's longest cooldown; 0 when none.",
            ),
            &["account"],
        )?;
        registry.register(Box::new(cooldown_seconds.clone()))?;
        let account_blocked = IntGaugeVec::new(
            Opts::new(
                "llmpool_account_blocked",
                "1 when the account is blocked until its credentials change.",
            ),
            &["account"],
        )?;
        registry.register(Box::new(account_blocked.clone()))?;
        let config_generation = IntGauge::new(
            "llmpool_config_generation",
            "Generation of the configuration being served.",
        )?;
        registry.register(Box::new(config_generation.clone()))?;
        let state_degraded = IntGauge::new(
            "llmpool_state_degraded",
            "1 while the shared state store is unreachable and this replica serves on its local view.",
        )?;
        registry.register(Box::new(state_degraded.clone()))?;
        let account_limit = IntGaugeVec::new(
            Opts::new(
                "llmpool_account_limit",
                "Configured limit of an account, by limit.",
            ),
            &["account", "limit"],
        )?;
        registry.register(Box::new(account_limit.clone()))?;
        let cooldown_until = GaugeVec::new(
            Opts::new(
                "llmpool_account_cooldown_until_seconds",
                "Unix time the account's longest cooldown ends; 0 when none.",
            ),
            &["account"],
        )?;
        registry.register(Box::new(cooldown_until.clone()))?;
        let cooldowns = counter(
            "llmpool_account_cooldowns_total",
            "Cooldowns started, by account and reason (rate_limited, exhausted, blocked).",
            &["account", "reason"],
        )?;
        let tier_served = counter(
            "llmpool_route_tier_served_total",
            "Served requests by route and tier (0 = first tier; more = fallbacks).",
            &["route", "tier"],
        )?;
        let tokens = counter(
            "llmpool_tokens_total",
            "Tokens by route, account and kind (input, output, cached_input).",
            &["route", "account", "kind"],
        )?;
        let sessions = counter(
            "llmpool_session_requests_total",
            "Sticky-route requests with a session, by route and result (hit: served by the bound account).",
            &["route", "result"],
        )?;
        let client_requests = counter(
            "llmpool_client_requests_total",
            "Requests of named clients (LlmClient) by client and HTTP status.",
            &["client", "status"],
        )?;
        let client_tokens = counter(
            "llmpool_client_tokens_total",
            "Tokens of named clients by client and kind (input, output, cached_input).",
            &["client", "kind"],
        )?;
        let client_limit = IntGaugeVec::new(
            Opts::new(
                "llmpool_client_limit",
                "Configured limit of a named client, by limit.",
            ),
            &["client", "limit"],
        )?;
        registry.register(Box::new(client_limit.clone()))?;
        let client_usage = IntGaugeVec::new(
            Opts::new(
                "llmpool_client_usage",
                "What a named client used across replicas, by window (requests_last_minute, tokens_last_minute, tokens_today, in_flight).",
            ),
            &["client", "window"],
        )?;
        registry.register(Box::new(client_usage.clone()))?;
        let streams_open = IntGauge::new(
            "llmpool_streams_open",
            "Streams being relayed to clients now.",
        )?;
        registry.register(Box::new(streams_open.clone()))?;
        let connections_open = IntGauge::new(
            "llmpool_client_connections_open",
            "Client connections open now.",
        )?;
        registry.register(Box::new(connections_open.clone()))?;
        let runtime_tasks = IntGauge::new(
            "llmpool_runtime_tasks",
            "Tasks alive on the proxy's runtime (connections, streams, background loops).",
        )?;
        registry.register(Box::new(runtime_tasks.clone()))?;
        let connections_refused = prometheus::IntCounter::new(
            "llmpool_client_connections_refused_total",
            "Client connections refused with a 503 because the connection cap was reached.",
        )?;
        registry.register(Box::new(connections_refused.clone()))?;
        let request_seconds = HistogramVec::new(
            HistogramOpts::new(
                "llmpool_request_duration_seconds",
                "Time from a request's arrival to its response head, by client API.",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["api"],
        )?;
        registry.register(Box::new(request_seconds.clone()))?;
        let overhead_seconds = prometheus::Histogram::with_opts(
            HistogramOpts::new(
                "llmpool_gateway_overhead_seconds",
                "The gateway's own time per served request: time in the pipeline minus time waiting on upstreams.",
            )
            .buckets(vec![
                0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
            ]),
        )?;
        registry.register(Box::new(overhead_seconds.clone()))?;
        Ok(Self {
            overhead_seconds,
            account_limit,
            cooldown_until,
            cooldowns,
            tier_served,
            tokens,
            sessions,
            client_requests,
            client_tokens,
            client_limit,
            client_usage,
            streams_open,
            connections_open,
            runtime_tasks,
            connections_refused,
            request_seconds,
            registry,
            requests,
            attempts,
            errors,
            upstream_seconds,
            first_byte_seconds,
            in_flight,
            cooldown_seconds,
            account_blocked,
            reloads,
            config_generation,
            state_degraded,
        })
    }

    /// Counts the tokens of one served answer, for its route and account
    /// and for the named client it was charged to.
    pub fn count_tokens(
        &self,
        route: &str,
        account: &str,
        client: Option<&str>,
        usage: &crate::protocol::ir::Usage,
    ) {
        for (kind, n) in [
            ("input", usage.input),
            ("output", usage.output),
            ("cached_input", usage.cached_input),
        ] {
            if n > 0 {
                self.tokens
                    .with_label_values(&[route, account, kind])
                    .inc_by(n);
                if let Some(client) = client {
                    self.client_tokens
                        .with_label_values(&[client, kind])
                        .inc_by(n);
                }
            }
        }
    }

    /// The text exposition.
    pub fn render(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // encoding into a Vec cannot fail for well-formed metric families
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        out
    }
}
