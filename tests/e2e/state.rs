//! The state store's S3 adapter (`S3Store`) on the emulator, through the `StateStore` trait only:
//! a lost compare-and-set comes back as `PutOutcome::Conflict`, never as an error (a stale
//! version, an object that exists, one deleted since it was read); listings page with
//! start-after and stay inside the store's prefix; deleting a missing object succeeds; a version
//! changes with the bytes, not with every write.

use futures::StreamExt;
use lakelog::aws::client::Endpoint;
use lakelog::aws::s3::S3Store;
use lakelog::backend::state::{each_key, PutOutcome, StateStore};

use crate::emulator::Emulator;
use crate::SOURCE_REGION;

/// A store under `prefix` of the test's own bucket (created).
async fn store(emu: &Emulator, name: &str, prefix: &str) -> S3Store {
    let s3 = Endpoint::new(SOURCE_REGION, Some(&emu.moto_url)).s3().await;
    let store = S3Store::new(s3, &format!("lakelog-{name}-state"), prefix);
    store.ensure_bucket(SOURCE_REGION, true).await.expect("state bucket");
    store
}

fn written(outcome: PutOutcome) -> String {
    match outcome {
        PutOutcome::Written(version) => version,
        PutOutcome::Conflict => panic!("expected the write to win"),
    }
}

#[tokio::test]
async fn s3_state_store_conditional_writes_answer_conflict_not_errors() {
    let emu = Emulator::start();
    let store = store(&emu, "state-cas", "lakelog/").await;
    let key = "checkpoints/dr/shard-0.json";

    let v1 = written(store.put_if_absent(key, b"1".to_vec()).await.expect("create"));
    let exists = store.put_if_absent(key, b"other".to_vec()).await.expect("a lost create is an answer");
    assert_eq!(exists, PutOutcome::Conflict);

    let v2 = written(store.put_if_match(key, b"2".to_vec(), &v1).await.expect("update from the current version"));
    assert_ne!(v1, v2, "new bytes, new version");
    let stale = store.put_if_match(key, b"3".to_vec(), &v1).await.expect("a lost update is an answer");
    assert_eq!(stale, PutOutcome::Conflict);
    let stored = store.get(key).await.expect("get").expect("exists");
    assert_eq!((stored.bytes.as_slice(), stored.version.as_str()), (&b"2"[..], v2.as_str()), "a conflict never writes");

    // Deleted since it was read: someone else changed it, as much as a newer write would have.
    store.delete(key).await.expect("delete");
    let gone = store.put_if_match(key, b"4".to_vec(), &v2).await.expect("a write to a deleted object is an answer");
    assert_eq!(gone, PutOutcome::Conflict);
    assert_eq!(store.get(key).await.expect("get"), None, "and writes nothing");

    // A version names the bytes, not the write (S3's ETag of a plain upload is their MD5):
    // rewriting the same bytes keeps it, which `MemoryStore` copies so no caller relies on more.
    let same = store.put(key, b"5".to_vec()).await.expect("put");
    assert_eq!(store.put(key, b"5".to_vec()).await.expect("put again"), same);
}

#[tokio::test]
async fn s3_state_store_lists_pages_after_a_key_inside_its_prefix_and_deletes_missing_keys() {
    let emu = Emulator::start();
    let store = store(&emu, "state-list", "lakelog/").await;
    // Another store in the same bucket: a prefix that starts like ours must not leak in.
    let neighbour = store_in_same_bucket(&emu, "state-list", "lakelog-other/").await;
    neighbour.put("deadletters/x", vec![]).await.expect("put");

    // One more than S3's page of 1,000, so the listing continues with start-after.
    let keys: Vec<String> = (0..1003).map(|i| format!("deadletters/{i:05}")).collect();
    futures::stream::iter(keys.iter().map(|k| store.put(k, vec![])))
        .buffer_unordered(16)
        .for_each(|r| async move {
            r.expect("put");
        })
        .await;
    store.put("deadletters-not/0", vec![]).await.expect("put");

    let mut pages = Vec::new();
    each_key(&store, "deadletters/", |page| pages.push(page)).await.expect("list");
    assert!(pages.len() >= 2, "1,003 keys take more than one S3 page");
    assert_eq!(pages.concat(), keys, "every key once, in order, relative to the store's prefix");

    let page = store.list("deadletters/", Some("deadletters/01000")).await.expect("list after");
    assert_eq!((page.keys, page.more), (vec!["deadletters/01001".to_string(), "deadletters/01002".to_string()], false));

    store.delete("deadletters/never-written").await.expect("deleting a missing object succeeds");
    store.delete("deadletters/00000").await.expect("delete");
    assert_eq!(store.get("deadletters/00000").await.expect("get"), None);
}

async fn store_in_same_bucket(emu: &Emulator, name: &str, prefix: &str) -> S3Store {
    let s3 = Endpoint::new(SOURCE_REGION, Some(&emu.moto_url)).s3().await;
    S3Store::new(s3, &format!("lakelog-{name}-state"), prefix)
}
