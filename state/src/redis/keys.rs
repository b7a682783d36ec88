//! The one key schema of a namespace's shared state. Every key begins with
//! `llmpool:{<namespace>}:`, whose `{…}` hash tag puts all of a namespace on
//! one Redis Cluster slot; every script gets each key it touches in KEYS,
//! built here, and nothing else in the crate spells a key.
//!
//! | key | type | what |
//! |---|---|---|
//! | `seq` | counter | lease ids |
//! | `replicas` | sorted set | live replicas (heartbeats) |
//! | `events` | pub/sub channel | cooldown changes |
//! | `ss:<session>` | string | session → account binding |
//! | `resp:<id>` | string | stored response → account |
//! | `acct:<a>:` / `client:<c>:` + `leases`, `requests`, `tokens` | sorted sets | in flight, request and token windows |
//! | … + `day:<n>` | counter | tokens of UTC day n |
//! | `acct:<a>:cdi`, `fails`, `last` | sorted set, counter, hash | cooldown index, failures in a row, last failure |
//! | `cd:a:<a>`, `cd:m:<a>:<model>`, `cd:b:<a>`, `cd:p:<project>:<model>` | hashes | cooldowns: account-wide, per model, breaker, per project |
//! | `done:<replica>:<n>` | string | a group of completions was applied (so a resent group counts once) |
//! | `none` | — | an unused KEYS slot (no session, client or project); never written |

use crate::Candidate;
use crate::clock::DAY_MS;

/// Key names of one namespace.
#[derive(Clone, Debug)]
pub(super) struct Keys {
    prefix: String,
}

impl Keys {
    /// The keys of `namespace`.
    pub(super) fn new(namespace: &str) -> Self {
        Self {
            prefix: format!("llmpool:{{{namespace}}}:"),
        }
    }

    fn key(&self, rest: &str) -> String {
        join(&self.prefix, &[rest])
    }

    fn key3(&self, a: &str, b: &str, c: &str) -> String {
        join(&self.prefix, &[a, b, c])
    }

    /// The lease id counter (also the routing key of read-only scripts).
    pub(super) fn seq(&self) -> String {
        self.key("seq")
    }

    /// Live replicas by last heartbeat.
    pub(super) fn replicas(&self) -> String {
        self.key("replicas")
    }

    /// The pub/sub channel of cooldown changes.
    pub(super) fn events(&self) -> String {
        self.key("events")
    }

    /// A session's binding.
    pub(super) fn session(&self, session: &str) -> String {
        self.key3("ss:", session, "")
    }

    /// A stored response's account.
    pub(super) fn response(&self, id: &str) -> String {
        self.key3("resp:", id, "")
    }

    /// The marker of the `n`th group of completions `replica` sent.
    pub(super) fn done(&self, replica: &str, n: u64) -> String {
        join(&self.prefix, &["done:", replica, ":", &n.to_string()])
    }

    /// The slot for an absent session, client or project.
    pub(super) fn none(&self) -> String {
        self.key("none")
    }

    /// An account's windows and records.
    pub(super) fn account(&self, account: &str) -> Record {
        Record(self.key3("acct:", account, ":"))
    }

    /// A client's windows.
    pub(super) fn client(&self, client: &str) -> Record {
        Record(self.key3("client:", client, ":"))
    }

    /// The cooldowns that apply to a candidate, in the order scripts take
    /// them: account-wide, (account, model), breaker, (project, model) or
    /// the unused slot.
    pub(super) fn cooldowns(&self, c: &Candidate) -> [String; 4] {
        [
            self.key3("cd:a:", &c.account, ""),
            join(&self.prefix, &["cd:m:", &c.account, ":", &c.model]),
            self.key3("cd:b:", &c.account, ""),
            match &c.project {
                Some(p) => join(&self.prefix, &["cd:p:", p, ":", &c.model]),
                None => self.none(),
            },
        ]
    }

    /// An account's account-wide and breaker cooldowns (what a reset clears
    /// beside its index).
    pub(super) fn account_wide(&self, account: &str) -> [String; 2] {
        [
            self.key3("cd:a:", account, ""),
            self.key3("cd:b:", account, ""),
        ]
    }
}

/// `head` followed by `parts`, in one allocation (keys are built on every
/// request).
fn join(head: &str, parts: &[&str]) -> String {
    let len = head.len() + parts.iter().map(|p| p.len()).sum::<usize>();
    let mut out = String::with_capacity(len);
    out.push_str(head);
    for p in parts {
        out.push_str(p);
    }
    out
}

/// The keys under one account or client.
#[derive(Clone, Debug)]
pub(super) struct Record(String);

impl Record {
    fn key(&self, rest: &str) -> String {
        join(&self.0, &[rest])
    }

    /// Leases in flight (member: lease id, score: expiry).
    pub(super) fn leases(&self) -> String {
        self.key("leases")
    }

    /// Admitted requests (member: lease id, score: time).
    pub(super) fn requests(&self) -> String {
        self.key("requests")
    }

    /// Token records (member: `<lease>:<tokens>`, score: time).
    pub(super) fn tokens(&self) -> String {
        self.key("tokens")
    }

    /// Tokens of the UTC day of `now_ms`.
    pub(super) fn day(&self, now_ms: u64) -> String {
        join(&self.0, &["day:", &(now_ms / DAY_MS).to_string()])
    }

    /// An account's cooldown index (member: cooldown key, score: until).
    pub(super) fn cooldown_index(&self) -> String {
        self.key("cdi")
    }

    /// An account's failed attempts in a row.
    pub(super) fn fails(&self) -> String {
        self.key("fails")
    }

    /// An account's last failure class and time.
    pub(super) fn last(&self) -> String {
        self.key("last")
    }

    /// The four window keys in script order: leases, requests, tokens, day.
    pub(super) fn windows(&self, now_ms: u64) -> [String; 4] {
        [
            self.leases(),
            self.requests(),
            self.tokens(),
            self.day(now_ms),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_of_a_namespace_carries_its_hash_tag() {
        let k = Keys::new("team-a");
        let c = Candidate {
            account: "a".into(),
            tier: 0,
            model: "m".into(),
            project: Some("p".into()),
            limits: Default::default(),
            fingerprint: "f".into(),
        };
        let mut all = vec![
            k.seq(),
            k.replicas(),
            k.session("s"),
            k.response("r"),
            k.none(),
            k.done("r", 1),
        ];
        all.extend(k.cooldowns(&c));
        all.extend(k.account("a").windows(DAY_MS * 3 + 5));
        all.extend(k.client("c").windows(0));
        for key in &all {
            assert!(key.starts_with("llmpool:{team-a}:"), "{key}");
        }
        assert_eq!(
            k.account("a").day(DAY_MS * 3 + 5),
            "llmpool:{team-a}:acct:a:day:3"
        );
        assert_eq!(k.cooldowns(&c)[3], "llmpool:{team-a}:cd:p:p:m");
    }
}
