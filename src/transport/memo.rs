//! What a run learns once about the places it reads, and every image of the run reuses: a
//! repository's tags list, and which registries have no referrers API.
//!
//! A nightly `sync` of many tags of one repository would otherwise list its tags once to select
//! them and again for every tag's signatures and referrers, and ask a registry without the
//! referrers API for every subject of every image only to be told 404 each time. [`RunMemo`] is
//! made by the caller for one run (one `sync`, one `copy`) and handed down with the plan's
//! options, as the registry sessions are: nothing here outlives the run, so a tag pushed to the
//! source after the run started is seen by the next run. Concurrent first asks for the same
//! repository share one request (a `OnceCell` per key); a failed ask is not remembered.
//!
//! It sits above the [`Transport`] trait rather than in the registry session so that every
//! transport (the in-memory test registry included, whose call log proves the counts) gets the
//! same rule from one implementation.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use super::{Result, Transport};
use crate::oci::{Descriptor, Digest};

/// One answer, asked for once.
type Once<T> = Arc<OnceCell<T>>;

#[derive(Default)]
pub struct RunMemo {
    /// Tags lists by location (`docker://host/repo`).
    tags: Mutex<HashMap<String, Once<Arc<Vec<String>>>>>,
    /// Whether a registry host serves the referrers API, once one answer said so.
    referrers_api: Mutex<HashMap<String, Once<bool>>>,
}

impl std::fmt::Debug for RunMemo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunMemo").finish_non_exhaustive()
    }
}

impl RunMemo {
    pub fn new() -> Arc<RunMemo> {
        Arc::default()
    }

    /// Every tag of `repo`, listed at most once per run.
    pub async fn tags(&self, repo: &dyn Transport) -> Result<Arc<Vec<String>>> {
        let cell = self
            .tags
            .lock()
            .expect("lock")
            .entry(repo.location())
            .or_default()
            .clone();
        cell.get_or_try_init(|| async { repo.list_tags().await.map(Arc::new) })
            .await
            .cloned()
    }

    /// The OCI 1.1 referrers of `subject` in `repo`, or `None` where the registry has no
    /// referrers API, which is asked once per registry host per run.
    pub async fn referrers(
        &self,
        repo: &dyn Transport,
        subject: &Digest,
    ) -> Result<Option<Vec<Descriptor>>> {
        let host = repo
            .registry_repository()
            .map(|(host, _)| host)
            .unwrap_or_else(|| repo.location());
        let cell = self
            .referrers_api
            .lock()
            .expect("lock")
            .entry(host)
            .or_default()
            .clone();
        match cell.get() {
            Some(false) => return Ok(None),
            Some(true) => return repo.referrers(subject).await,
            None => {}
        }
        let mut answer = None;
        let has_api = *cell
            .get_or_try_init(|| async {
                let listed = repo.referrers(subject).await?;
                let has = listed.is_some();
                answer = Some(listed);
                Ok::<_, super::TransportError>(has)
            })
            .await?;
        match answer {
            Some(listed) => Ok(listed),
            None if has_api => repo.referrers(subject).await,
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::memory::{Call, MemoryRegistries, images};

    #[tokio::test]
    async fn tags_are_listed_and_the_referrers_api_probed_once_per_run() {
        let regs = MemoryRegistries::new();
        let src = regs.registry("src.test");
        let img = images::index(&src, "a", "v1", &["linux/amd64"], false);
        images::index(&src, "b", "v1", &["linux/amd64"], false);
        let memo = RunMemo::new();
        let (a, b) = (src.repo("a"), src.repo("b"));
        let (x, y) = tokio::join!(memo.tags(&a), memo.tags(&a));
        assert_eq!(*x.unwrap(), ["v1"]);
        assert_eq!(*y.unwrap(), ["v1"]);
        memo.tags(&b).await.unwrap();
        for _ in 0..3 {
            assert_eq!(memo.referrers(&a, &img.index.digest).await.unwrap(), None);
            assert_eq!(memo.referrers(&b, &img.index.digest).await.unwrap(), None);
        }
        let log = src.log();
        let count = |f: fn(&Call) -> bool| log.iter().filter(|c| f(c)).count();
        assert_eq!(count(|c| matches!(c, Call::ListTags(r) if r == "a")), 1);
        assert_eq!(count(|c| matches!(c, Call::ListTags(r) if r == "b")), 1);
        assert_eq!(count(|c| matches!(c, Call::Referrers(..))), 1, "{log:#?}");

        // Where the API is there, every subject is asked.
        src.set(|b| b.referrers_api = true);
        src.clear_log();
        let memo = RunMemo::new();
        for _ in 0..2 {
            assert!(
                memo.referrers(&a, &img.index.digest)
                    .await
                    .unwrap()
                    .is_some()
            );
        }
        assert_eq!(src.log().len(), 2);
        // A new run lists again.
        src.clear_log();
        RunMemo::new().tags(&a).await.unwrap();
        assert_eq!(src.log(), [Call::ListTags("a".into())]);
    }
}
