//! A group's members arrive page by page: each page is committed as it comes, a fetch that
//! stopped resumes from the stored checkpoint, and a page fetched twice is counted once.

use crate::support::*;
use patchwave::ports::{EffectExecutor, EffectOutcome, ManualClock};
use patchwave::service::RolloutService;
use patchwave::store::sqlite::SqliteStore;
use rollout_core::*;
use std::sync::{Arc, Mutex};

const PAGE: usize = 3;

/// A twin query answering pages of 3 devices; it fails once at a page, and it can then
/// forget the checkpoint once (start over at page 0, as after a crash between a page's
/// commit and its checkpoint).
struct PagedHub {
    devices: Vec<String>,
    fail_once_at: Mutex<Option<u32>>,
    forget_checkpoint: Mutex<bool>,
    asked: Mutex<Vec<u32>>,
}

impl PagedHub {
    fn new(count: usize, fail_once_at: u32, forget_checkpoint: bool) -> Self {
        PagedHub {
            devices: devices("gw", count),
            fail_once_at: Mutex::new(Some(fail_once_at)),
            forget_checkpoint: Mutex::new(forget_checkpoint),
            asked: Mutex::new(Vec::new()),
        }
    }

    fn asked(&self) -> Vec<u32> {
        self.asked.lock().expect("lock").clone()
    }
}

#[async_trait::async_trait]
impl EffectExecutor for PagedHub {
    async fn execute(
        &self,
        _: &Rollout,
        effect: &Effect,
        checkpoint: Option<&str>,
    ) -> EffectOutcome {
        let EffectKind::FetchGroupMembers { .. } = effect.kind else {
            return EffectOutcome::Done;
        };
        // the checkpoint is forgotten on the first attempt after the failure
        let failed_already = self.fail_once_at.lock().expect("lock").is_none();
        let mut forget = self.forget_checkpoint.lock().expect("lock");
        let page: u32 = match checkpoint {
            Some(_) if *forget && failed_already => {
                *forget = false;
                0
            }
            Some(at) => at
                .strip_prefix("page:")
                .and_then(|n| n.parse().ok())
                .expect("our checkpoint"),
            None => 0,
        };
        drop(forget);
        self.asked.lock().expect("lock").push(page);
        let mut fail = self.fail_once_at.lock().expect("lock");
        if *fail == Some(page) {
            *fail = None;
            return EffectOutcome::Failed {
                error: "throttled".into(),
                retryable: true,
            };
        }
        let first = page as usize * PAGE;
        let devices = self.devices[first..(first + PAGE).min(self.devices.len())].to_vec();
        let more = first + PAGE < self.devices.len();
        EffectOutcome::MembersPage {
            devices,
            page,
            resume: more.then(|| format!("page:{}", page + 1)),
        }
    }
}

async fn service_with(hub: Arc<PagedHub>) -> (Arc<RolloutService>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("dir");
    let store = SqliteStore::open(&dir.path().join("patchwave.db")).expect("open");
    let clock = Arc::new(ManualClock::new(t0()));
    (
        Arc::new(RolloutService::new(Arc::new(store), hub, clock)),
        dir,
    )
}

#[tokio::test]
async fn members_are_committed_page_by_page_and_the_fetch_resumes_from_its_checkpoint() {
    let hub = Arc::new(PagedHub::new(10, 2, false));
    let (service, _dir) = service_with(hub.clone()).await;
    let created = service
        .create(one_wave_plan("canary", 100.0), "alice", None)
        .await
        .expect("create");
    // pages 0 and 1 are committed; page 2 failed, so the wave waits without deploying
    let rollout = service.get(created.id()).await.expect("rollout");
    assert_eq!(rollout.wave_progress()[0].counts.total, 6);
    assert!(!rollout.wave_progress()[0].members_known);
    assert!(rollout.wave_progress()[0].deployed_at.is_none());
    service.run_effects(created.id()).await.expect("resume");
    let rollout = service.get(created.id()).await.expect("rollout");
    assert_eq!(rollout.wave_progress()[0].counts.total, 10);
    assert!(rollout.wave_progress()[0].members_known);
    assert!(
        rollout.wave_progress()[0].deployed_at.is_some(),
        "deployment requested after the last page"
    );
    // resumed at page 2, not from the start
    assert_eq!(hub.asked(), [0, 1, 2, 2, 3]);
}

#[tokio::test]
async fn a_page_fetched_again_is_counted_once() {
    let hub = Arc::new(PagedHub::new(10, 2, true));
    let (service, _dir) = service_with(hub.clone()).await;
    let created = service
        .create(one_wave_plan("canary", 100.0), "alice", None)
        .await
        .expect("create");
    service.run_effects(created.id()).await.expect("resume");
    let rollout = service.get(created.id()).await.expect("rollout");
    // pages 0 and 1 came twice (the checkpoint was lost); every device counts once
    assert_eq!(hub.asked(), [0, 1, 2, 0, 1, 2, 3]);
    assert_eq!(rollout.wave_progress()[0].counts.total, 10);
    assert!(rollout.wave_progress()[0].members_known);
}
