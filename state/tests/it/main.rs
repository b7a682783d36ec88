//! Integration tests of the proxy library.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod redis_admin;
mod redis_batching;
mod redis_connections;
mod state_suite;

use std::time::Duration;

use llmpool_e2e::redis::RedisServer;
use llmpool_state::{Clock, MemoryStore, RedisConfig, RedisStore};

/// A fixed start for the manual clock (mid-day UTC, so no day boundary).
pub(crate) const START_MS: u64 = 1_700_000_000_000 + 43_200_000;

/// Runs each suite function against both stores.
macro_rules! for_both_stores {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    let clock = super::Clock::manual(super::START_MS);
                    let store = super::MemoryStore::new(100, clock.clone());
                    super::state_suite::$name(&store, &clock).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    let server = super::RedisServer::start().unwrap();
                    let clock = super::Clock::manual(super::START_MS);
                    let store = super::redis_store(&server, &clock);
                    assert!(store.connected(super::Duration::from_secs(10)).await, "redis-server unreachable");
                    super::state_suite::$name(&*store, &clock).await;
                    assert!(!llmpool_state::StateStore::degraded(&*store), "the suite ran on Redis, not the fallback");
                }
            )*
        }
    };
}

fn redis_store(server: &RedisServer, clock: &Clock) -> std::sync::Arc<RedisStore> {
    RedisStore::start(redis_config(server), clock.clone(), 100)
}

fn redis_config(server: &RedisServer) -> RedisConfig {
    RedisConfig {
        url: server.url(),
        cluster: false,
        // generous: two cores run many tests at once, and a slow answer would
        // silently test the fallback view instead of Redis
        call_timeout: Duration::from_secs(5),
        fallback_replicas: None,
        namespace: "ns".to_owned(),
        ca_file: None,
    }
}

for_both_stores!(
    requests_per_minute_is_a_sliding_window_exact_at_the_boundary,
    max_concurrency_holds_and_leases_expire_on_their_own,
    a_429_cools_the_account_model_pair_then_one_probe_goes_first,
    a_failed_probe_lets_the_next_request_probe_and_a_429_probe_cools_again,
    projects_share_cooldowns,
    an_account_block_lasts_until_the_credential_changes,
    later_tiers_are_used_only_when_earlier_ones_are_full,
    unavailable_names_the_earliest_time_any_candidate_frees_up,
    sessions_stick_to_their_account_and_rebind_on_failover,
    least_busy_picks_the_account_with_fewest_in_flight,
    token_windows_reserve_then_reconcile_with_real_usage,
    consecutive_failures_open_the_circuit_and_one_probe_closes_it,
    a_session_is_bound_when_admitted_so_the_next_turn_cannot_race,
    stored_responses_are_found_on_their_account_until_they_expire,
    a_client_over_its_request_window_is_refused_without_touching_accounts,
    client_tokens_and_concurrency_hold_and_failed_attempts_are_not_charged,
    a_client_daily_budget_holds_until_the_next_utc_day,
    an_unavailable_answer_says_why_each_account_is_out,
);
