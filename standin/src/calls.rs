//! Device Update calls as the stand-in takes them: every deployment `PUT` and `DELETE` and every
//! subgroup `:cancel` and `:retry`, stamped with a monotonic instant when its handler starts
//! (after the body was read and any injected latency), and sent with its answer's status to
//! whoever subscribed ([`AduCalls::subscribe`]), so a bench or a test can time what the handler
//! sends. Nothing is kept: a call made while no one subscribes is dropped, and a subscriber
//! more than [`CAPACITY`] calls behind loses the oldest (`RecvError::Lagged`).

use tokio::sync::broadcast;
use tokio::time::Instant;

/// Calls a subscriber may fall behind by before it loses the oldest.
pub const CAPACITY: usize = 1024;

/// What a Device Update call asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AduAction {
    /// `PUT …/groups/{group}/deployments/{deployment}`.
    PutDeployment,
    /// `DELETE …/groups/{group}/deployments/{deployment}`.
    DeleteDeployment,
    /// `POST …/deviceClassSubgroups/{class}/deployments/{deployment}:cancel`.
    CancelSubgroup {
        /// The device class.
        class: String,
    },
    /// `POST …/deviceClassSubgroups/{class}/deployments/{deployment}:retry`.
    RetrySubgroup {
        /// The device class.
        class: String,
    },
}

/// One Device Update call, as it arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AduCall {
    /// When its handler started.
    pub arrived: Instant,
    /// What it asked for.
    pub action: AduAction,
    /// The group in its path.
    pub group: String,
    /// The deployment in its path.
    pub deployment: String,
    /// The status it was answered with.
    pub status: u16,
}

/// Where the stand-in's Device Update routes send the calls they take.
#[derive(Debug)]
pub struct AduCalls(broadcast::Sender<AduCall>);

impl Default for AduCalls {
    fn default() -> Self {
        AduCalls(broadcast::channel(CAPACITY).0)
    }
}

impl AduCalls {
    /// Every call from now on, in the order their answers were made.
    pub fn subscribe(&self) -> broadcast::Receiver<AduCall> {
        self.0.subscribe()
    }

    /// Sends a call to the subscribers (none: it is dropped).
    pub(super) fn note(
        &self,
        arrived: Instant,
        action: AduAction,
        group: &str,
        deployment: &str,
        status: u16,
    ) {
        if self.0.receiver_count() == 0 {
            return;
        }
        let _ = self.0.send(AduCall {
            arrived,
            action,
            group: group.to_string(),
            deployment: deployment.to_string(),
            status,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{GroupConfig, Standin, StandinConfig};
    use serde_json::{json, Value};
    use std::time::Duration;

    fn deployment(id: &str) -> Value {
        json!({"deploymentId": id, "groupId": "g1", "startDateTime": "2026-01-01T00:00:00Z",
               "update": {"updateId": {"provider": "C", "name": "G", "version": "2"}}})
    }

    #[tokio::test]
    async fn deployment_puts_deletes_cancels_and_retries_reach_subscribers_stamped() {
        let standin = Standin::start(StandinConfig {
            groups: vec![GroupConfig::numbered("g1", 2, 0.0)],
            report_delay_min: Duration::from_secs(3600),
            report_delay_max: Duration::from_secs(3600),
            ..StandinConfig::default()
        })
        .await
        .expect("stand-in");
        let world = standin.world();
        let http = reqwest::Client::new();
        let base = format!("{}/deviceUpdate/i/management/groups/g1", standin.url());
        let put = |id: &str, version: &str| {
            http.put(format!("{base}/deployments/{id}?api-version={version}"))
                .json(&deployment(id))
                .send()
        };
        // before anyone subscribes: not kept
        put("d0", "2022-10-01").await.expect("put");
        let mut calls = world.adu_calls.subscribe();
        let before = Instant::now();
        put("d1", "2022-10-01").await.expect("put");
        put("d2", "2021-06-01-preview").await.expect("put");
        let class = world.snapshot()["groups"][0]["deviceClasses"][0]
            .as_str()
            .expect("class")
            .to_string();
        for verb in ["cancel", "retry"] {
            http.post(format!(
                "{base}/deviceClassSubgroups/{class}/deployments/d1:{verb}?api-version=2022-10-01"
            ))
            .send()
            .await
            .expect(verb);
        }
        http.delete(format!("{base}/deployments/d1?api-version=2022-10-01"))
            .send()
            .await
            .expect("delete");
        let mut seen = Vec::new();
        while let Ok(call) = calls.try_recv() {
            seen.push(call);
        }
        let what: Vec<(AduAction, &str, &str, u16)> = seen
            .iter()
            .map(|c| {
                (
                    c.action.clone(),
                    c.group.as_str(),
                    c.deployment.as_str(),
                    c.status,
                )
            })
            .collect();
        assert_eq!(
            what,
            vec![
                (AduAction::PutDeployment, "g1", "d1", 200),
                (AduAction::PutDeployment, "g1", "d2", 400),
                (
                    AduAction::CancelSubgroup {
                        class: class.clone()
                    },
                    "g1",
                    "d1",
                    200
                ),
                (
                    AduAction::RetrySubgroup {
                        class: class.clone()
                    },
                    "g1",
                    "d1",
                    200
                ),
                (AduAction::DeleteDeployment, "g1", "d1", 204),
            ]
        );
        assert!(seen[0].arrived >= before);
        assert!(seen
            .windows(2)
            .all(|pair| pair[0].arrived <= pair[1].arrived));
        assert!(seen[4].arrived <= Instant::now());
    }
}
