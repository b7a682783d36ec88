//! Kubernetes Events: one per condition that changed status, so
//! `kubectl describe llma NAME` tells the story. Messages come from the
//! conditions, which never hold a secret.

use kube::Client;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};

use crate::reconcile::Transition;

/// An Event's note may hold at most 1 kB.
const NOTE_LIMIT: usize = 1000;

/// The Event for one transition.
pub fn event(t: &Transition) -> Event {
    let c = &t.condition;
    let mut note = format!("{} is {}: {}", c.type_, c.status, c.message);
    if note.len() > NOTE_LIMIT {
        let mut cut = NOTE_LIMIT;
        while !note.is_char_boundary(cut) {
            cut -= 1;
        }
        note.truncate(cut);
    }
    Event {
        type_: if c.status == "True" {
            EventType::Normal
        } else {
            EventType::Warning
        },
        reason: c.reason.clone(),
        note: Some(note),
        action: "Reconcile".to_owned(),
        secondary: None,
    }
}

/// Publishes Events as this operator replica.
pub struct Events {
    recorder: Recorder,
}

impl Events {
    /// `instance` tells replicas apart (the pod name).
    pub fn new(client: Client, instance: &str) -> Self {
        let reporter = Reporter {
            controller: "llmpool-operator".to_owned(),
            instance: Some(instance.to_owned()),
        };
        Self {
            recorder: Recorder::new(client, reporter),
        }
    }

    /// Publishes one Event per transition; a failed publish is logged and
    /// never fails the reconcile.
    pub async fn publish(&self, transitions: &[Transition]) {
        for t in transitions {
            if let Err(e) = self.recorder.publish(&event(t), &t.object).await {
                tracing::warn!(error = %e, object = ?t.object.name, "cannot publish an Event");
            }
        }
    }

    /// Publishes a one-off Event on an object.
    pub async fn note(&self, object: &k8s_openapi::api::core::v1::ObjectReference, event: Event) {
        if let Err(e) = self.recorder.publish(&event, object).await {
            tracing::warn!(error = %e, object = ?object.name, "cannot publish an Event");
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ObjectReference;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;

    use super::*;

    fn transition(status: &str, message: &str) -> Transition {
        Transition {
            object: ObjectReference::default(),
            condition: Condition {
                type_: "CredentialsResolved".to_owned(),
                status: status.to_owned(),
                reason: "CredentialsMissing".to_owned(),
                message: message.to_owned(),
                observed_generation: None,
                last_transition_time: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
                    k8s_openapi::jiff::Timestamp::UNIX_EPOCH,
                ),
            },
        }
    }

    #[test]
    fn a_condition_turning_false_is_a_warning_that_says_what_to_fix() {
        let e = event(&transition("False", "Secret openai-key has no key apiKey"));
        assert_eq!(e.type_, EventType::Warning);
        assert_eq!(e.reason, "CredentialsMissing");
        assert_eq!(
            e.note.as_deref(),
            Some("CredentialsResolved is False: Secret openai-key has no key apiKey")
        );
        assert_eq!(event(&transition("True", "found")).type_, EventType::Normal);
    }

    #[test]
    fn long_messages_are_cut_to_the_event_limit_on_a_character_boundary() {
        let e = event(&transition("False", &"é".repeat(800)));
        let note = e.note.unwrap();
        assert!(note.len() <= NOTE_LIMIT && note.ends_with('é'));
    }
}
