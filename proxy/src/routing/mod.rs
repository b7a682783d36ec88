//! Route matching and strategy ordering: from a requested model to the
//! ordered candidate accounts the state store admits from. Pure; no I/O.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use llmpool_crds::Strategy;

use crate::snapshot::{Member, RouteRuntime};
use crate::state::Candidate;

/// The candidates of one request, with the members to call them through.
pub struct Plan<'s> {
    /// In strategy order, tier by tier.
    pub candidates: Vec<Candidate>,
    /// `members[i]` serves `candidates[i]`.
    pub members: Vec<&'s Member>,
}

/// Orders the route's accounts for one request. Runs once per request.
pub fn plan<'s>(route: &'s RouteRuntime, requested_model: &str) -> Plan<'s> {
    let strategy = route.compiled.strategy;
    let turn = match strategy {
        Strategy::FillFirst => 0,
        _ => route.rotation.fetch_add(1, Ordering::Relaxed),
    };
    let requested: Arc<str> = Arc::from(requested_model);
    let mut candidates = Vec::new();
    let mut members = Vec::new();
    for (t, tier) in route.tiers.iter().enumerate() {
        let model = tier.model.clone().unwrap_or_else(|| requested.clone());
        let order: Vec<usize> = match strategy {
            Strategy::FillFirst => tier.by_priority.clone(),
            _ => rotated_distinct(&tier.weighted, tier.members.len(), turn),
        };
        for i in order {
            let member = &tier.members[i];
            let acc = &member.account;
            if acc.compiled.disabled || !acc.serves(&model) {
                continue;
            }
            candidates.push(Candidate {
                account: acc.name.clone(),
                tier: t,
                model: model.clone(),
                project: acc.project.clone(),
                limits: acc.compiled.limits,
                fingerprint: acc.fingerprint.clone(),
            });
            members.push(member);
        }
    }
    Plan {
        candidates,
        members,
    }
}

/// The distinct members in weighted order, starting at position `turn`.
fn rotated_distinct(weighted: &[usize], members: usize, turn: u64) -> Vec<usize> {
    if weighted.is_empty() {
        return Vec::new();
    }
    let start = usize::try_from(turn % weighted.len() as u64).unwrap_or(0);
    let mut out = Vec::with_capacity(members);
    // who is listed already: a bit per member, a vector only past 64
    let (mut small, mut large) = (0u64, Vec::new());
    if members > 64 {
        large = vec![false; members];
    }
    for &i in weighted[start..].iter().chain(&weighted[..start]) {
        let seen = match large.get_mut(i) {
            Some(seen) => std::mem::replace(seen, true),
            None => {
                let bit = 1u64 << (i % 64);
                let seen = small & bit != 0;
                small |= bit;
                seen
            }
        };
        if !seen {
            out.push(i);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotation_starts_at_the_weighted_position_and_lists_everyone_once() {
        let weighted = [0, 1, 0, 2, 0];
        assert_eq!(rotated_distinct(&weighted, 3, 0), [0, 1, 2]);
        assert_eq!(rotated_distinct(&weighted, 3, 1), [1, 0, 2]);
        assert_eq!(rotated_distinct(&weighted, 3, 3), [2, 0, 1]);
        assert_eq!(rotated_distinct(&weighted, 3, 8), [2, 0, 1]);
        // past 64 members the bookkeeping changes; the answer does not
        let many: Vec<usize> = (0..100).chain((0..100).rev()).collect();
        let listed = rotated_distinct(&many, 100, 150);
        assert_eq!(listed.len(), 100);
        assert_eq!(listed[..3], [49, 48, 47]);
        let mut sorted = listed.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        let firsts: Vec<usize> = (0..5)
            .map(|t| rotated_distinct(&weighted, 3, t)[0])
            .collect();
        assert_eq!(firsts.iter().filter(|&&i| i == 0).count(), 3);
    }
}
