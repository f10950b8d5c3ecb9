//! Runs that outlive a crash: resumed, spoken again or interrupted by the restarted service,
//! and the stored log read back event by event.

use super::*;

on_every_database!(
    a_restart_resumes_the_debate_it_interrupted,
    a_restart_speaks_again_the_perspective_it_cut_off,
    a_restart_interrupts_a_debate_it_cannot_resume,
    a_run_log_reads_back_event_by_event_from_any_point,
);

mod cases {
    use super::*;

    /// Starts a run (`POST` of `body` to `route`) on a process of its own, follows it until
    /// `until` holds of the events heard, lets those be stored, then tears the process down
    /// as a crash would. Returns the run's id, its owner's token and the events heard.
    async fn crash_mid_run(
        db: &str,
        options: FakeOptions,
        (route, body): (&'static str, Value),
        until: fn(&[(i64, String, Value)]) -> bool,
    ) -> (String, String, Vec<(i64, String, Value)>) {
        let db = db.to_string();
        // The first process (with its model) runs on its own runtime, which is then torn
        // down: a crash.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let result = runtime.block_on(async {
                let fake = FakeLlm::start(options).await;
                let app = start(&fake, &db, |_| {}).await;
                let token = app.user().await;
                let (_, created) = app.post(route, Some(&token), body).await;
                let id = created["id"].as_str().unwrap().to_string();
                let path = created["events"].as_str().unwrap().to_string();
                let mut heard: Vec<(i64, String, Value)> = Vec::new();
                while !until(&heard) {
                    let last = heard.last().map(|e| e.0);
                    let next = app.events(&path, &token, last, 1).await;
                    assert_ne!(next[0].1, "done", "the run ended before the crash");
                    heard.extend(next);
                }
                // What was heard is stored within a commit (50 ms); what follows may not be.
                tokio::time::sleep(Duration::from_millis(300)).await;
                (id, token, heard)
            });
            runtime.shutdown_background();
            result
        })
        .join()
        .unwrap()
    }

    fn turns_ended(events: &[(i64, String, Value)], round: u64) -> Vec<(String, String)> {
        events
            .iter()
            .filter(|e| e.1 == "turn_end" && e.2["round"] == round)
            .map(|e| {
                let speaker = e.2["speaker"].as_str().unwrap().to_string();
                (speaker, e.2["text"].as_str().unwrap().to_string())
            })
            .collect()
    }

    /// A crash in the rebuttals: the restarted service resumes the debate, keeping the
    /// openings as they were and speaking the rebuttals again, and its log goes on past a gap.
    pub async fn a_restart_resumes_the_debate_it_interrupted(db: &str) {
        let slow = FakeOptions {
            token_delay: Duration::from_millis(40),
            ..FakeOptions::default()
        };
        let rebutting = |heard: &[(i64, String, Value)]| {
            heard
                .iter()
                .any(|e| e.1 == "turn_start" && e.2["round"] == 2)
        };
        let (id, token, heard) =
            crash_mid_run(db, slow, ("/api/debates", debate_body()), rebutting).await;
        let openings = turns_ended(&heard, 1);
        assert_eq!(openings.len(), 2, "both openings ended before the crash");

        let fake = FakeLlm::start(FakeOptions::default()).await;
        let app = start(&fake, db, |_| {}).await;
        let path = format!("/api/debates/{id}/events");
        let events = app.events(&path, &token, None, usize::MAX).await;
        assert_eq!(events.last().unwrap().2["status"], "done", "{events:?}");
        let ids: Vec<i64> = events.iter().map(|e| e.0).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        let gap = ids.windows(2).position(|w| w[1] - w[0] > 1).expect("a gap");
        assert!(ids[gap + 1] > crossfire_server::live::CRASH_GAP, "{ids:?}");
        // The rebuttals that had started start over; the openings are not spoken again.
        let restarted: Vec<&Value> = events[gap + 1..]
            .iter()
            .filter(|e| e.1 == "turn_restart")
            .map(|e| &e.2)
            .collect();
        assert!(!restarted.is_empty(), "{events:?}");
        assert!(
            restarted
                .iter()
                .all(|r| r["round"] == 2 && r["reason"] == "the service restarted"),
            "{restarted:?}"
        );
        assert!(
            fake.requests(Target::Debater)
                .iter()
                .all(|call| call.body["messages"][1]["content"]
                    .as_str()
                    .is_some_and(|user| user.starts_with("Round 2"))),
            "only the rebuttals are asked for again"
        );
        assert_eq!(turns_ended(&events, 1), openings);
        let (status, transcript) = app.get(&format!("/api/debates/{id}"), Some(&token)).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(transcript["status"], "done");
        assert!(transcript["verdict"]["winner"].is_string(), "{transcript}");
        let stored: Vec<(u64, String, String)> = transcript["rounds"]
            .as_array()
            .unwrap()
            .iter()
            .flat_map(|r| {
                r["turns"].as_array().unwrap().iter().map(move |t| {
                    let round = r["round"].as_u64().unwrap();
                    let speaker = t["speaker"].as_str().unwrap().to_string();
                    (round, speaker, t["text"].as_str().unwrap().to_string())
                })
            })
            .collect();
        let streamed: Vec<(u64, String, String)> = [1, 2]
            .into_iter()
            .flat_map(|round| {
                turns_ended(&events, round)
                    .into_iter()
                    .map(move |(speaker, text)| (round, speaker, text))
            })
            .collect();
        assert_eq!(
            streamed, stored,
            "the stream tells what the transcript holds"
        );
        let metrics = app.metrics().await;
        assert!(
            metrics.contains("crossfire_runs_taken_over_total{outcome=\"resumed\"} 1"),
            "{metrics}"
        );

        // A client that heard events the crash kept from the log is told to start over.
        let before_gap = ids[gap];
        let body = app
            .http
            .get(format!("{}{path}", app.base))
            .bearer_auth(&token)
            .header("Last-Event-ID", (before_gap + 3).to_string())
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.starts_with("event: reset\ndata: {}\n\n"), "{body}");
        assert!(
            body.contains("\nid: 1\n") && body.contains("event: done"),
            "{body}"
        );
        // One that heard only what was stored resumes as ever.
        let rest = app
            .events(&path, &token, Some(before_gap), usize::MAX)
            .await;
        assert_eq!(rest, events[gap + 1..].to_vec());
    }

    /// A crash in the middle of a perspective: the restarted service speaks it again, the
    /// turn started over with `turn_restart`, past the crash gap.
    pub async fn a_restart_speaks_again_the_perspective_it_cut_off(db: &str) {
        let slow = FakeOptions {
            token_delay: Duration::from_millis(40),
            ..FakeOptions::default()
        };
        let ask = json!({"story": "global-temperature-1-5c", "persona": "rachel-carson"});
        let speaking = |heard: &[(i64, String, Value)]| heard.iter().any(|e| e.1 == "token");
        let (id, token, _) = crash_mid_run(db, slow, ("/api/perspectives", ask), speaking).await;

        let fake = FakeLlm::start(FakeOptions::default()).await;
        let app = start(&fake, db, |_| {}).await;
        let path = format!("/api/perspectives/{id}/events");
        let events = app.events(&path, &token, None, usize::MAX).await;
        assert_eq!(events.last().unwrap().2["status"], "done", "{events:?}");
        let names: Vec<&str> = events.iter().map(|e| e.1.as_str()).collect();
        assert_eq!(names.iter().filter(|n| **n == "turn_start").count(), 1);
        let restart = events.iter().position(|e| e.1 == "turn_restart");
        let restart = restart.expect("the perspective starts over");
        assert_eq!(events[restart].2["reason"], "the service restarted");
        assert!(events[restart].0 > crossfire_server::live::CRASH_GAP);
        let (_, record) = app
            .get(&format!("/api/perspectives/{id}"), Some(&token))
            .await;
        assert_eq!(record["status"], "done", "{record}");
        let ended = events.iter().find(|e| e.1 == "turn_end").unwrap();
        assert_eq!(record["text"], ended.2["text"]);
        assert_eq!(fake.requests(Target::Debater).len(), 1, "spoken once more");
    }

    /// A crash, then a restart with one of the debate's personas edited: the debate cannot
    /// resume as it began, so it ends as interrupted, keeping the turn that had finished.
    pub async fn a_restart_interrupts_a_debate_it_cannot_resume(db: &str) {
        let slow = FakeOptions {
            token_delay: Duration::from_millis(40),
            faults: vec![(Target::Speaker("George F. Kennan"), Fault::Hang)],
            ..FakeOptions::default()
        };
        let one_ended = |heard: &[(i64, String, Value)]| heard.iter().any(|e| e.1 == "turn_end");
        let (id, token, heard) =
            crash_mid_run(db, slow, ("/api/debates", debate_body()), one_ended).await;
        let finished = turns_ended(&heard, 1);

        let personas = std::env::temp_dir().join(format!(
            "crossfire-edited-{}",
            crossfire_engine::transcript::new_id()
        ));
        std::fs::create_dir_all(&personas).unwrap();
        for entry in std::fs::read_dir(support::repo("personas")).unwrap() {
            let from = entry.unwrap().path();
            let mut text = std::fs::read_to_string(&from).unwrap();
            if from.file_name().unwrap() == "george-kennan.toml" {
                text = text.replacen("voice = \"", "voice = \"Edited. ", 1);
            }
            std::fs::write(personas.join(from.file_name().unwrap()), text).unwrap();
        }
        let fake = FakeLlm::start(FakeOptions::default()).await;
        let app = start(&fake, db, |s| s.paths.personas_dir = personas.clone()).await;
        let (_, transcript) = app.get(&format!("/api/debates/{id}"), Some(&token)).await;
        assert_eq!(transcript["status"], "failed", "{transcript}");
        assert_eq!(transcript["error"]["code"], "interrupted");
        assert!(
            transcript["error"]["message"]
                .as_str()
                .unwrap()
                .contains("a persona has changed"),
            "{transcript}"
        );
        let kept: Vec<(String, String)> = transcript["rounds"][0]["turns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let speaker = t["speaker"].as_str().unwrap().to_string();
                (speaker, t["text"].as_str().unwrap().to_string())
            })
            .collect();
        assert_eq!(kept, finished, "the finished turn is kept");
        assert!(fake.log().is_empty(), "nothing is spoken again");
        let _ = std::fs::remove_dir_all(&personas);
    }

    /// The writer keeps each run's events of one commit in one row; read back, from the
    /// start or from inside a row, they come one by one, each once, in order.
    pub async fn a_run_log_reads_back_event_by_event_from_any_point(db: &str) {
        use crossfire_server::store::{Run, RunKind, Store, StoredEvent};
        let store = Store::connect(db).await.unwrap();
        let user = store.create_user("log@example.com", "-", 0).await.unwrap();
        for id in ["a", "b"] {
            let run = Run::queued(id, RunKind::Debate, user.id, None, "{}".into());
            let claim = crossfire_server::store::Claim {
                owner: "test",
                until: i64::MAX,
            };
            store.create_run(&run, None, claim).await.unwrap();
        }
        let event = |id: &str, seq: i64| StoredEvent {
            seq,
            name: if seq == 3 { "turn_end" } else { "token" }.into(),
            // An escaped line break and a space stay inside the event.
            data: format!(r#"{{"text":"{id} {seq}\n"}}"#),
        };
        // Two runs' events interleaved and queued together (one commit), then two more of
        // one run (later commits).
        for seq in 1..=4 {
            for id in ["a", "b"] {
                store.queue_event(id, event(id, seq));
            }
        }
        store.queue_event("a", event("a", 5)).wait().await.unwrap();
        store.queue_event("a", event("a", 6)).wait().await.unwrap();
        // Text from elsewhere, with a raw line break, is kept as it is too.
        let raw = StoredEvent {
            seq: 7,
            name: "note".into(),
            data: "two\nlines".into(),
        };
        store.queue_event("a", raw.clone());
        store.queue_event("a", event("a", 8)).wait().await.unwrap();

        let mut all: Vec<StoredEvent> = (1..=6).map(|seq| event("a", seq)).collect();
        all.extend([raw, event("a", 8)]);
        for after in 0..=8 {
            let read = store.events_after("a", after).await.unwrap();
            assert_eq!(read, all[after as usize..], "after {after}");
        }
        let b = store.events_after("b", 2).await.unwrap();
        assert_eq!(b, [event("b", 3), event("b", 4)]);
        assert_eq!(store.last_seq("a").await.unwrap(), 8);
        assert_eq!(store.last_seq("b").await.unwrap(), 4);
    }
}
