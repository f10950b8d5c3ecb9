//! The prompt cache on disk, with the real model: a prefix two prompts shared is saved, a
//! later scheduler (as a later process would) starts from it and generates exactly what it
//! would have computed itself; a damaged file, or one of another model, is never used.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossfire_embedded::Model;
use crossfire_embedded::prompt_cache::DiskCache;
use crossfire_embedded::scheduler::{Output, Request, Scheduler};

use super::model::{greedy, model};

/// Two prompts that share their first ~200 tokens, as a debate's two sides share the story.
fn prompts(model: &Model) -> (Vec<u32>, Vec<u32>) {
    let story = "The central bank held its rate on Tuesday, citing inflation that is still above \
        target, a labour market that has cooled but not cracked, and the risk that cutting too \
        early would undo two years of work. Markets had priced in a cut; shares fell and the \
        currency rose. Economists were split on whether the next move comes in spring. ";
    let shared = story.repeat(3);
    let encode = |tail: &str| {
        model
            .tokenizer
            .encode(&format!("{shared}{tail}"))
            .expect("encode")
    };
    (
        encode("Argue for a cut now, as a banker of 1930 would:"),
        encode("Argue against any cut, as a banker of 1980 would:"),
    )
}

fn request(prompt: Vec<u32>) -> Request {
    Request {
        ignore_end: true,
        ..Request::generate(prompt, 24, greedy())
    }
}

/// Runs the prompts together to the end: each one's text and prompt tokens not computed.
fn run(scheduler: &mut Scheduler, prompts: &[Vec<u32>]) -> Vec<(String, usize)> {
    let ids: Vec<u64> = prompts
        .iter()
        .map(|p| scheduler.add(request(p.clone())))
        .collect();
    let mut out = vec![(String::new(), 0); ids.len()];
    while !scheduler.is_empty() {
        for (id, output) in scheduler.step() {
            let slot = ids.iter().position(|&i| i == id).expect("an id of ours");
            match output {
                Output::Text(t) => out[slot].0.push_str(&t),
                Output::Done(finish) => out[slot].1 = finish.cached_tokens,
                Output::Choice(_) => {}
            }
        }
    }
    out
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "crossfire-prompt-cache-{}",
        crossfire_engine::transcript::new_id()
    ));
    std::fs::create_dir_all(&dir).expect("a temporary folder");
    dir
}

fn saved(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "kv"))
                .collect()
        })
        .unwrap_or_default()
}

/// Waits for the background save of a shared prefix.
fn wait_for_a_save(dir: &Path) -> PathBuf {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(file) = saved(dir).into_iter().next() {
            return file;
        }
        assert!(Instant::now() < deadline, "no prefix was saved");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The first prompt alone, with nothing cached anywhere.
fn uncached(model: &Arc<Model>, prompt: &[u32]) -> String {
    let mut scheduler = Scheduler::with_caches(model.clone(), 0, None);
    run(&mut scheduler, &[prompt.to_vec()]).remove(0).0
}

/// Two prompts sharing a prefix, run together with a disk cache in a fresh folder, once
/// the shared prefix is saved: the first prompt, the cache, what the run gave (each
/// prompt's text and cached tokens), and the saved file.
struct Saved {
    first: Vec<u32>,
    dir: PathBuf,
    disk: DiskCache,
    together: Vec<(String, usize)>,
    file: PathBuf,
}

fn shared_and_saved(model: &Arc<Model>) -> Saved {
    let (first, second) = prompts(model);
    let dir = temp_dir();
    let model_path = crossfire_embedded::fetch::default_path();
    let disk = DiskCache::open(&dir, &model_path, 1 << 30).expect("open the cache");
    let mut scheduler = Scheduler::with_caches(model.clone(), 64 << 20, Some(disk.clone()));
    let together = run(&mut scheduler, &[first.clone(), second]);
    let file = wait_for_a_save(&dir);
    // Any other save the run began lands too.
    std::thread::sleep(Duration::from_millis(200));
    Saved {
        first,
        dir,
        disk,
        together,
        file,
    }
}

#[test]
fn a_prefix_two_prompts_shared_is_saved_and_a_later_scheduler_starts_from_it() {
    let model = model();
    let Saved {
        first,
        dir,
        disk,
        together,
        ..
    } = shared_and_saved(&model);
    assert!(
        together[1].1 >= 128,
        "the second prompt starts from the first's prefix: {together:?}"
    );

    // A later process: nothing in memory, the disk has the shared prefix.
    let mut later = Scheduler::with_caches(model.clone(), 64 << 20, Some(disk));
    let (text, cached) = run(&mut later, std::slice::from_ref(&first)).remove(0);
    assert!(cached >= 128, "{cached} tokens from the disk");
    assert_eq!(cached % 64, 0, "a whole number of blocks");
    assert_eq!(
        text,
        uncached(&model, &first),
        "the same tokens as computing it all"
    );
    assert_eq!(text, together[0].0);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_damaged_file_or_another_models_is_never_used() {
    let model = model();
    let Saved {
        first,
        dir,
        disk,
        file,
        ..
    } = shared_and_saved(&model);

    // Another model file: its prefixes are not this one's, whatever the tokens.
    let other_model = dir.join("other.gguf");
    std::fs::write(&other_model, b"not the same weights").expect("write");
    let other = DiskCache::open(&dir, &other_model, 1 << 30).expect("open");
    let empty = model.transformer.new_cache();
    assert!(other.find(&first, 0, first.len(), &empty).is_none());
    assert!(disk.find(&first, 0, first.len(), &empty).is_some());

    // One byte changed in the middle of the values: the checksum no longer holds.
    let mut bytes = std::fs::read(&file).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(&file, &bytes).expect("write");
    for saved in saved(&dir).into_iter().filter(|f| *f != file) {
        std::fs::remove_file(saved).expect("remove");
    }
    let mut later = Scheduler::with_caches(model.clone(), 64 << 20, Some(disk));
    let (text, cached) = run(&mut later, std::slice::from_ref(&first)).remove(0);
    assert_eq!(cached, 0, "nothing from a damaged file");
    assert!(!file.exists(), "the damaged file is removed");
    assert_eq!(text, uncached(&model, &first));
    let _ = std::fs::remove_dir_all(&dir);
}
