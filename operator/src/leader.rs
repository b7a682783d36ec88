//! Leader election with a coordination.k8s.io Lease, so that of several
//! operator replicas exactly one writes. The holder renews the Lease well
//! inside its duration; another replica takes it over only once the holder
//! has failed to renew for a whole duration. Every write carries the
//! resourceVersion it read, so two candidates can never both win.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use tokio::sync::watch;

/// Who competes for which Lease.
#[derive(Clone, Debug)]
pub struct Election {
    /// The Lease object's name.
    pub lease: String,
    /// This replica's identity (its pod name).
    pub identity: String,
    /// How long a holder that stops renewing keeps the Lease.
    pub duration: Duration,
}

/// Why this replica stopped leading without being asked to.
#[derive(Debug, thiserror::Error)]
pub enum Lost {
    /// Another replica holds the Lease now.
    #[error("lost the leader Lease to another replica")]
    Taken,
    /// Renewals failed for a whole Lease duration.
    #[error("could not renew the leader Lease in time: {0}")]
    Expired(kube::Error),
}

/// Waits until `stop` turns true (or its sender is gone).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

fn conflict(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.code == 409)
}

impl Election {
    fn spec(&self, now: Timestamp, acquired: Option<MicroTime>, transitions: i32) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.duration.as_secs().max(1)).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(acquired.unwrap_or(MicroTime(now))),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    /// Takes or renews the Lease at `now`; true while this replica leads.
    pub async fn try_lead(&self, api: &Api<Lease>, now: Timestamp) -> Result<bool, kube::Error> {
        let Some(mut lease) = api.get_opt(&self.lease).await? else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.lease.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, None, 0)),
            };
            return match api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if conflict(&e) => Ok(false),
                Err(e) => Err(e),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().unwrap_or_default();
        let mine = holder == self.identity;
        let held_until = spec.renew_time.as_ref().map(|t| {
            t.0 + SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)))
        });
        let free = holder.is_empty() || held_until.is_none_or(|until| until < now);
        if !mine && !free {
            return Ok(false);
        }
        let transitions = spec.lease_transitions.unwrap_or(0) + i32::from(!mine);
        let acquired = if mine { spec.acquire_time } else { None };
        lease.spec = Some(self.spec(now, acquired, transitions));
        match api
            .replace(&self.lease, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if conflict(&e) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Stands by until the Lease is ours, then runs `work` while renewing
    /// it every third of its duration. `leading` hears every change. Returns
    /// Ok when `stop` turns true (the Lease is given up for a quick
    /// takeover), or the reason leadership was lost; either way `work` is
    /// stopped first, so two leaders never write at once.
    pub async fn lead<W>(
        &self,
        api: &Api<Lease>,
        work: W,
        mut stop: watch::Receiver<bool>,
        leading: impl Fn(bool),
    ) -> Result<(), Lost>
    where
        W: Future<Output = ()> + Send + 'static,
    {
        let period = self.duration / 3;
        loop {
            match self.try_lead(api, Timestamp::now()).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read the leader Lease"),
            }
            tokio::select! {
                () = stopped(&mut stop) => return Ok(()),
                () = tokio::time::sleep(period) => {}
            }
        }
        tracing::info!(lease = %self.lease, "leading");
        leading(true);
        let work = tokio::spawn(work);
        let mut renewed = tokio::time::Instant::now();
        let outcome = loop {
            tokio::select! {
                () = stopped(&mut stop) => break Ok(()),
                () = tokio::time::sleep(period) => {}
            }
            match self.try_lead(api, Timestamp::now()).await {
                Ok(true) => renewed = tokio::time::Instant::now(),
                Ok(false) => break Err(Lost::Taken),
                Err(e) if renewed.elapsed() < self.duration => {
                    tracing::warn!(error = %e, "cannot renew the leader Lease; retrying");
                }
                Err(e) => break Err(Lost::Expired(e)),
            }
        };
        // stop writing before anyone else may start
        work.abort();
        leading(false);
        if outcome.is_ok()
            && let Err(e) = self.release(api).await
        {
            tracing::warn!(error = %e, "could not release the leader Lease");
        }
        outcome
    }

    /// Gives the Lease up on shutdown, so a standby takes over at once.
    pub async fn release(&self, api: &Api<Lease>) -> Result<(), kube::Error> {
        let Some(mut lease) = api.get_opt(&self.lease).await? else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.renew_time = None;
        api.replace(&self.lease, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests;
