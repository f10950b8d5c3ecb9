//! The moderation endpoint's clients (`screen::endpoint`) against the fake of
//! `crossfire-testkit`: both wire formats, their categories mapped to the policy's, one request
//! per batch (OpenAI's) or per text (a guard model's), the key sent as Bearer and never shown,
//! and every failure an `Unavailable` within the deadline.

use std::time::{Duration, Instant};

use crossfire_engine::config::Secret;
use crossfire_engine::screen::endpoint::{
    CATEGORIES, DEFAULT_OPENAI_MODEL, ModerationBackend, ModerationConfig, ModerationError, OTHER,
    OnError, OpenAiModeration, moderation,
};
use crossfire_testkit::moderation::{
    FakeModeration, Fault, Flag, ModerationOptions, OPENAI_CATEGORIES, Wire,
};

const KEY: &str = "sk-mod-7f3a9c1e-do-not-print";
const TIMEOUT: Duration = Duration::from_millis(300);
/// How far past the deadline a failure may be reported, on a busy two-core machine.
const SLACK: Duration = Duration::from_millis(700);

/// Each of OpenAI's categories (and one it may add), with ours.
const OPENAI_CASES: &[(&str, &str)] = &[
    ("hate", "hate"),
    ("hate/threatening", "hate"),
    ("harassment", "harassment_threats"),
    ("harassment/threatening", "harassment_threats"),
    ("violence", "violence_incitement"),
    ("violence/graphic", "violence_incitement"),
    ("self-harm", "self_harm"),
    ("self-harm/intent", "self_harm"),
    ("self-harm/instructions", "self_harm"),
    ("sexual", "sexual_minors"),
    ("sexual/minors", "sexual_minors"),
    ("illicit", "weapons_illicit"),
    ("illicit/violent", "weapons_illicit"),
    // Not one of OpenAI's today: a category a newer model might add.
    ("political/persuasion", OTHER),
];

/// Each of Llama Guard 3's hazard codes, with ours.
const GUARD_CASES: &[(&str, &str)] = &[
    ("S1", "violence_incitement"),
    ("S2", "weapons_illicit"),
    ("S3", "sexual_minors"),
    ("S4", "sexual_minors"),
    ("S5", "defamation_private"),
    ("S6", OTHER),
    ("S7", "harassment_threats"),
    ("S8", OTHER),
    ("S9", "weapons_illicit"),
    ("S10", "hate"),
    ("S11", "self_harm"),
    ("S12", "sexual_minors"),
    ("S13", OTHER),
    ("S14", OTHER),
];

fn config(backend: ModerationBackend, base_url: &str, key: Option<&str>) -> ModerationConfig {
    ModerationConfig {
        backend,
        base_url: base_url.to_string(),
        model: match backend {
            ModerationBackend::Openai => DEFAULT_OPENAI_MODEL.to_string(),
            ModerationBackend::Guard => "llama-guard3:1b".to_string(),
        },
        api_key: key.map(Secret::new),
        timeout: TIMEOUT,
        on_error: OnError::Refuse,
    }
}

/// A fake flagging `[name]` under OpenAI's category `name` and `[Sn]` under code `Sn`.
async fn fake() -> FakeModeration {
    let mut flags: Vec<Flag> = OPENAI_CASES
        .iter()
        .map(|(name, _)| Flag::new(&format!("[{name}]"), name, "S14"))
        .collect();
    flags.extend(
        GUARD_CASES
            .iter()
            .map(|(code, _)| Flag::new(&format!("[{code}]"), "illicit", code)),
    );
    FakeModeration::start(ModerationOptions {
        flags,
        ..ModerationOptions::default()
    })
    .await
}

#[tokio::test]
async fn openai_classifies_a_batch_in_one_call_and_maps_every_category() {
    let fake = fake().await;
    let mut batch = vec!["Should Britain rejoin the European Union?".to_string()];
    let mut expected: Vec<Option<String>> = vec![None];
    for (name, ours) in OPENAI_CASES {
        batch.push(format!("A motion that trips [{name}], says the fake."));
        expected.push(Some(ours.to_string()));
    }
    // Several categories: self-harm comes first, so a reader in distress sees the helpline.
    batch.push("[harassment] and then [self-harm/intent]".to_string());
    expected.push(Some("self_harm".to_string()));
    batch.push("[hate] [violence]".to_string());
    expected.push(Some("violence_incitement".to_string()));
    batch.push("Is a four-day week good for productivity?".to_string());
    expected.push(None);

    let client = moderation(&config(ModerationBackend::Openai, &fake.base_url, None));
    assert_eq!(client.name(), DEFAULT_OPENAI_MODEL);
    let verdicts = client.classify(&batch).await.unwrap();
    assert_eq!(verdicts, expected);

    let requests = fake.requests();
    assert_eq!(requests.len(), 1, "one request for the whole batch");
    let request = &requests[0];
    assert_eq!(request.wire, Wire::Openai);
    assert_eq!(request.texts(), batch, "every text, in order");
    assert_eq!(request.body["model"], DEFAULT_OPENAI_MODEL);
    assert_eq!(request.authorization, None, "no key, no Authorization");
    for name in OPENAI_CATEGORIES {
        assert!(
            OPENAI_CASES.iter().any(|(case, _)| case == name),
            "{name} is tested"
        );
    }
}

#[tokio::test]
async fn a_guard_model_is_asked_once_per_text_and_its_codes_map() {
    let fake = fake().await;
    let mut batch = vec!["Should Britain rejoin the European Union?".to_string()];
    let mut expected: Vec<Option<String>> = vec![None];
    for (code, ours) in GUARD_CASES {
        batch.push(format!("A motion that trips [{code}]."));
        expected.push(Some(ours.to_string()));
    }
    batch.push("[S10] and [S1]".to_string());
    expected.push(Some("violence_incitement".to_string()));
    batch.push("Is a four-day week good for productivity?".to_string());
    expected.push(None);

    let client = moderation(&config(ModerationBackend::Guard, &fake.base_url, None));
    assert_eq!(client.name(), "llama-guard3:1b");
    let verdicts = client.classify(&batch).await.unwrap();
    assert_eq!(verdicts, expected);
    for id in CATEGORIES {
        assert!(
            GUARD_CASES.iter().any(|(_, ours)| ours == id),
            "{id} is reachable from a code"
        );
    }

    let requests = fake.requests();
    assert_eq!(requests.len(), batch.len(), "one request per text");
    let mut asked: Vec<String> = Vec::new();
    for request in &requests {
        assert_eq!(request.wire, Wire::Guard);
        assert_eq!(request.body["model"], "llama-guard3:1b");
        assert_eq!(request.body["temperature"], 0.0);
        assert_eq!(request.body["stream"], false);
        let max_tokens = request.body["max_tokens"].as_u64().unwrap();
        assert!((8..=32).contains(&max_tokens), "{max_tokens}");
        let messages = request.body["messages"].as_array().unwrap();
        assert_eq!(
            messages.len(),
            1,
            "the text alone: the template is the server's"
        );
        assert_eq!(messages[0]["role"], "user");
        asked.extend(request.texts());
    }
    let mut sorted = batch.clone();
    sorted.sort();
    asked.sort();
    assert_eq!(asked, sorted, "every text asked about once");
}

#[tokio::test]
async fn an_empty_batch_asks_nothing() {
    let fake = fake().await;
    for backend in [ModerationBackend::Openai, ModerationBackend::Guard] {
        let client = moderation(&config(backend, &fake.base_url, None));
        assert_eq!(
            client.classify(&[]).await.unwrap(),
            Vec::<Option<String>>::new()
        );
    }
    assert!(fake.requests().is_empty());
}

#[tokio::test]
async fn the_key_is_sent_as_bearer_and_never_shown() {
    let fake = fake().await;
    let batch = vec![
        "a calm motion".to_string(),
        "[hate] [S10] a motion".to_string(),
    ];
    for backend in [ModerationBackend::Openai, ModerationBackend::Guard] {
        let config = config(backend, &format!("{}/", fake.base_url), Some(KEY));
        let shown = format!("{config:?}");
        assert!(!shown.contains(KEY), "{shown}");
        assert!(shown.contains("Secret(***)"), "{shown}");

        fake.set_fault(None);
        let client = moderation(&config);
        client.classify(&batch).await.unwrap();
        let last = fake.requests().pop().unwrap();
        assert_eq!(
            last.authorization.as_deref(),
            Some(&*format!("Bearer {KEY}"))
        );

        // The fake's error page echoes the Authorization header; the error masks it.
        fake.set_fault(Some(Fault::Down));
        let err = client.classify(&batch).await.unwrap_err();
        for shown in [err.to_string(), format!("{err:?}")] {
            assert!(!shown.contains(KEY), "{shown}");
        }
        assert!(err.to_string().contains("Bearer ***"), "{err}");
    }
    let client = OpenAiModeration::new(&config(
        ModerationBackend::Openai,
        &fake.base_url,
        Some(KEY),
    ));
    let shown = format!("{client:?}");
    assert!(!shown.contains(KEY), "{shown}");
}

#[tokio::test]
async fn every_failure_is_unavailable_within_the_deadline() {
    let fake = fake().await;
    let batch = vec![
        "a calm motion".to_string(),
        "[hate] [S10] a motion".to_string(),
    ];
    let cases = [
        (Fault::Down, "500 Internal Server Error"),
        (Fault::Hang, "no answer within"),
        (Fault::Garbage, "unreadable answer"),
    ];
    for backend in [ModerationBackend::Openai, ModerationBackend::Guard] {
        let client = moderation(&config(backend, &fake.base_url, None));
        let off_script = match backend {
            ModerationBackend::Openai => "expected 2 results (one per text), got 1",
            ModerationBackend::Guard => "neither `safe` nor `unsafe`",
        };
        for (fault, says) in cases.into_iter().chain([(Fault::OffScript, off_script)]) {
            fake.set_fault(Some(fault));
            let started = Instant::now();
            let result = client.classify(&batch).await;
            let took = started.elapsed();
            let Err(ModerationError::Unavailable { endpoint, detail }) = result else {
                panic!("{backend:?} {fault:?}: {result:?}");
            };
            assert_eq!(endpoint, fake.base_url, "{backend:?} {fault:?}");
            assert!(detail.contains(says), "{backend:?} {fault:?}: {detail}");
            assert!(
                took < TIMEOUT + SLACK,
                "{backend:?} {fault:?} took {took:?}"
            );
            if fault == Fault::Hang {
                assert!(took >= TIMEOUT, "{backend:?} gave up after {took:?}");
            }
        }
        fake.set_fault(None);
        assert_eq!(
            client.classify(&batch).await.unwrap(),
            vec![None, Some("hate".to_string())],
            "{backend:?} answers again once the fault is off"
        );
    }
}

#[tokio::test]
async fn an_unreachable_endpoint_is_unavailable_and_its_credentials_are_not_shown() {
    // A port nobody listens on.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let base_url = format!("http://moderator:hunter2@127.0.0.1:{port}/v1/?token=t0p");
    for backend in [ModerationBackend::Openai, ModerationBackend::Guard] {
        let client = moderation(&config(backend, &base_url, Some(KEY)));
        let started = Instant::now();
        let err = client
            .classify(&["anything".to_string()])
            .await
            .unwrap_err();
        assert!(started.elapsed() < TIMEOUT + SLACK);
        let ModerationError::Unavailable { endpoint, detail } = &err;
        assert_eq!(endpoint, &format!("http://127.0.0.1:{port}/v1"));
        assert!(detail.contains("cannot connect"), "{detail}");
        let shown = format!("{err} {err:?}");
        for secret in ["hunter2", "t0p", KEY] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
